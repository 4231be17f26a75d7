"""Reasoning nodes: propose labels, refine the scene (chain of updates), decompose into a plan."""

from __future__ import annotations

from cielr_core.settings import BOX_THRESHOLD as _BOX
from cielr_core.settings import MAX_ROUNDS

BOX_THRESHOLD, REFINE_ROUNDS = _BOX.default, MAX_ROUNDS.default
from cielr_core.progress import Progress

from . import inputs
from .base import CIELRNode
from .bridge import comfy_progress, single_image

INSTRUCTION_TIP = ("The edit instruction, as complex and implicit as you like, e.g. \"What in this room "
                   "makes the TV louder? Replace it with a floor lamp.\" Use the same text in every CIELR "
                   "node of the graph.")
LLM_TIP = "From CIELR LLM (OpenAI-compatible server) or CIELR LLM (local)."
SCENE_TIP = "A scene from CIELR Build Scene (or Refine Scene)."


class CIELRProposeLabels(CIELRNode):
    """Asks the LLM which objects to look for so the instruction can be carried out (the speaker behind "what
    makes the TV louder"), adds your own labels, and gives a comma-separated list for CIELR Perceive."""

    FUNCTION = "propose"
    OUTPUTS = (("STRING", "labels"),)

    INPUTS = {
        "required": {
            "llm": ("CIELR_LLM", {"tooltip": LLM_TIP}),
            "instruction": ("STRING", {"multiline": True, "default": "", "tooltip": INSTRUCTION_TIP}),
            "extra_labels": ("STRING", {
                "default": "",
                "tooltip": "Labels you want detected in any case, separated by commas; they come first "
                           "in the list."}),
        },
        "optional": {
            "image": ("IMAGE", {
                "tooltip": "The photo. Sent to the LLM only when it reads images (vision on)."}),
        },
    }

    def propose(self, llm, instruction: str, extra_labels: str, image=None):
        from cielr_core.reasoning import propose_labels

        rgb = None if image is None else single_image(image, "CIELR Propose Labels")
        labels = propose_labels(llm, instruction, image=rgb, extra_labels=extra_labels,
                                progress=comfy_progress())
        return (", ".join(labels),)


class CIELRRefineScene(CIELRNode):
    """The chain of scene updates: each round the LLM says whether the scene is enough for the instruction or
    which objects (or parts of an object) are missing; those are detected and added with new ids. Stops when
    enough, when a round adds nothing, or at max_rounds. The trace says what happened in every round. Without
    a detector (a scene from your own masks) the LLM is still asked and the trace says what it would look for,
    but nothing is added."""

    FUNCTION = "refine"
    OUTPUTS = (("CIELR_SCENE", "scene"), ("STRING", "trace"))

    INPUTS = {"required": {
        "image": ("IMAGE", {
            "tooltip": "The photo the scene was built from (missing objects are detected in it)."}),
        "scene": ("CIELR_SCENE", {"tooltip": SCENE_TIP}),
        "llm": ("CIELR_LLM", {"tooltip": LLM_TIP}),
        "instruction": ("STRING", {"multiline": True, "default": "", "tooltip": INSTRUCTION_TIP}),
        "max_rounds": ("INT", {
            "default": REFINE_ROUNDS, "min": 0, "max": 10,
            "tooltip": "At most this many LLM verdicts (each may add objects). 0 passes the scene "
                       "through unchanged (relations are computed if missing)."}),
        "box_threshold": ("FLOAT", {
            "default": BOX_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
            "tooltip": "Detector confidence for the objects looked for in a round."}),
        "text_threshold": inputs.text_threshold(),
    }, "optional": {
        # optional so scenes from other packs' masks can be refined without GroundingDINO
        "detector": ("CIELR_DETECTOR", {
            "tooltip": "From CIELR GroundingDINO Loader: finds the missing objects. Without it the LLM is "
                       "still asked and the trace says what it would look for, but nothing is added."}),
        "segmenter": ("CIELR_SEGMENTER", {
            "tooltip": "From CIELR SAM Loader: masks the missing objects. Without it new objects get "
                       "box-shaped masks (the scene notes it)."}),
    }}

    def refine(self, image, scene, llm, instruction: str, max_rounds: int, box_threshold: float,
               text_threshold: float, detector=None, segmenter=None):
        from cielr_core.perception import detect_objects
        from cielr_core.reasoning import refine_scene
        from cielr_core.scene import check_same_size

        rgb = single_image(image, "CIELR Refine Scene")
        check_same_size(scene, rgb, "CIELR Refine Scene")
        progress = comfy_progress()
        cancel_only = Progress(on_check=progress.on_check)

        def detect(labels, within):
            # ready() each time: a local LLM may have pushed the perception models off the GPU
            return detect_objects(rgb, detector.ready(), None if segmenter is None else segmenter.ready(), labels,
                                  box_threshold=box_threshold, text_threshold=text_threshold, within=within,
                                  progress=cancel_only)

        result = refine_scene(scene, instruction, llm, None if detector is None else detect, max_rounds=max_rounds,
                              progress=progress)
        return (result.scene, result.text())


class CIELRDecompose(CIELRNode):
    """Turns the instruction into a few simple actions (remove, replace, recolor, add) on objects of the
    scene, by id. The plan is checked against the scene; an invalid one gets one repair round, then an error
    that says what was wrong. Edit plan_json and feed it to CIELR Plan From JSON to change the plan by
    hand."""

    FUNCTION = "decompose"
    OUTPUTS = (("CIELR_PLAN", "plan"), ("STRING", "plan_json"))

    INPUTS = {"required": {
        "scene": ("CIELR_SCENE", {"tooltip": SCENE_TIP}),
        "llm": ("CIELR_LLM", {"tooltip": LLM_TIP}),
        "instruction": ("STRING", {"multiline": True, "default": "", "tooltip": INSTRUCTION_TIP}),
    }, "optional": {
        "image": ("IMAGE", {"tooltip": "Optional: the photo the plan will edit. Checked against the scene's "
                                       "size before the LLM is asked, so a scene made for another image "
                                       "is an error, not a plan for the wrong pixels."}),
    }}

    def decompose(self, scene, llm, instruction: str, image=None):
        from cielr_core.plan import plan_to_json
        from cielr_core.reasoning import decompose
        from cielr_core.scene import check_same_size

        if image is not None:
            check_same_size(scene, single_image(image, "CIELR Decompose"), "CIELR Decompose")

        plan = decompose(scene, instruction, llm, progress=comfy_progress())
        return (plan, plan_to_json(plan))


NODE_CLASS_MAPPINGS = {
    "CIELRProposeLabels": CIELRProposeLabels,
    "CIELRRefineScene": CIELRRefineScene,
    "CIELRDecompose": CIELRDecompose,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CIELRProposeLabels": "CIELR Propose Labels",
    "CIELRRefineScene": "CIELR Refine Scene",
    "CIELRDecompose": "CIELR Decompose",
}
