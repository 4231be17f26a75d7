"""Reasoning nodes: propose labels, refine the scene (chain of updates), decompose into a plan."""

from __future__ import annotations

from comfy_api.latest import io

from cielr_core import settings as S

from .base import LLM, REASONING, CIELRNode, Detector, Plan, Scene, Segmenter, out, socket, widget
from .bridge import comfy_progress, single_image

LLM_TIP = "From CIELR LLM (OpenAI-compatible server) or CIELR LLM (local)."
SCENE_TIP = "A scene from CIELR Build Scene (or Refine Scene)."


class CIELRProposeLabels(CIELRNode, title="CIELR Propose Labels", stage=REASONING,
                         aliases=("what to detect", "object names", "labels from instruction")):
    """Asks the LLM which objects to look for so the instruction can be carried out (the speaker behind "what
    makes the TV louder"), adds your own labels, and gives a comma-separated list for CIELR Perceive."""

    OUTPUTS = (out(io.String, "labels", "The object names to detect, comma-separated (yours first): connect "
                                        "it to CIELR Perceive's labels."),)

    INPUTS = (socket(LLM, "llm", LLM_TIP), widget(S.INSTRUCTION), widget(S.EXTRA_LABELS),
              socket(io.Image, "image", "The photo. Sent to the LLM only when it reads images (vision on).",
                     optional=True))

    @classmethod
    def execute(cls, llm, instruction: str, extra_labels: str, image=None) -> io.NodeOutput:
        from cielr_core.reasoning import propose_labels

        rgb = None if image is None else single_image(image, cls.TITLE)
        labels = propose_labels(llm, instruction, image=rgb, extra_labels=extra_labels, progress=comfy_progress())
        return io.NodeOutput(", ".join(labels))


class CIELRRefineScene(CIELRNode, title="CIELR Refine Scene", stage=REASONING,
                       aliases=("chain of updates", "find missing objects", "reason about scene")):
    """The chain of scene updates: each round the LLM says whether the scene is enough for the instruction or
    which objects (or parts of an object) are missing; those are detected and added with new ids. Stops when
    enough, when a round adds nothing, or at max_rounds. The trace says what happened in every round. Without
    a detector (a scene from your own masks) the LLM is still asked and the trace says what it would look for,
    but nothing is added."""

    OUTPUTS = (
        out(Scene, "scene", "The scene with the objects found in every round (new ids after the old ones), "
                            "relations computed: for Decompose and the editing nodes."),
        out(io.String, "trace", "What happened in every round: the LLM's verdict, what it looked for and what "
                                "was added, and why the loop stopped."),
    )

    INPUTS = (
        socket(io.Image, "image", "The photo the scene was built from (missing objects are detected in it)."),
        socket(Scene, "scene", SCENE_TIP),
        socket(LLM, "llm", LLM_TIP),
        widget(S.INSTRUCTION),
        widget(S.MAX_ROUNDS),
        widget(S.BOX_THRESHOLD),
        widget(S.TEXT_THRESHOLD),
        # optional so scenes from other packs' masks can be refined without GroundingDINO
        socket(Detector, "detector", "From CIELR GroundingDINO Loader: finds the missing objects. Without it "
                                     "the LLM is still asked and the trace says what it would look for, but "
                                     "nothing is added.", optional=True),
        socket(Segmenter, "segmenter", "From CIELR SAM Loader: masks the missing objects. Without it new "
                                       "objects get box-shaped masks (the scene notes it).", optional=True),
    )

    @classmethod
    def execute(cls, image, scene, llm, instruction: str, max_rounds: int, box_threshold: float,
                text_threshold: float, detector=None, segmenter=None) -> io.NodeOutput:
        from cielr_core.pipeline import PipelineSettings, detector_callable
        from cielr_core.reasoning import refine_scene
        from cielr_core.scene import check_same_size

        rgb = single_image(image, cls.TITLE)
        check_same_size(scene, rgb, cls.TITLE)
        progress = comfy_progress()
        looks = PipelineSettings(box_threshold=box_threshold, text_threshold=text_threshold)
        detect = None if detector is None else detector_callable(rgb, detector, segmenter, looks, progress)
        result = refine_scene(scene, instruction, llm, detect, max_rounds=max_rounds, progress=progress)
        return io.NodeOutput(result.scene, result.text())


class CIELRDecompose(CIELRNode, title="CIELR Decompose", stage=REASONING,
                     aliases=("plan edit", "edit actions", "instruction to actions", "decompose instruction")):
    """Turns the instruction into a few simple actions (remove, replace, recolor, add) on objects of the
    scene, by id. The plan is checked against the scene; an invalid one gets one repair round, then an error
    that says what was wrong. Edit plan_json and feed it to CIELR Plan From JSON to change the plan by
    hand."""

    OUTPUTS = (
        out(Plan, "plan", "The checked plan, for Inpaint Actions, Plan To Masks, Action Mask and Verify Edit."),
        out(io.String, "plan_json", "The plan as JSON, to read, or to edit and feed to CIELR Plan From JSON."),
    )

    INPUTS = (socket(Scene, "scene", SCENE_TIP), socket(LLM, "llm", LLM_TIP), widget(S.INSTRUCTION),
              socket(io.Image, "image", "Optional: the photo the plan will edit. Checked against the scene's size "
                                        "before the LLM is asked, so a scene made for another image is an error, "
                                        "not a plan for the wrong pixels.", optional=True))

    @classmethod
    def execute(cls, scene, llm, instruction: str, image=None) -> io.NodeOutput:
        from cielr_core.pipeline import plan_stage
        from cielr_core.plan import plan_to_json
        from cielr_core.scene import check_same_size

        if image is not None:
            check_same_size(scene, single_image(image, cls.TITLE), cls.TITLE)
        plan = plan_stage(scene, instruction, llm, progress=comfy_progress())
        return io.NodeOutput(plan, plan_to_json(plan))


NODES = (CIELRProposeLabels, CIELRRefineScene, CIELRDecompose)
