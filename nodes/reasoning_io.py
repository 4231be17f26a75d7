"""Reasoning with any LLM node: each step's request out as text, the answer text back in.

For every reasoning step a Request node gives the exact request the pack would send (system text, user
text, the answer's JSON schema) and an Answer node reads the LLM's answer with the same parser and checks
as the built-in LLM nodes. Between them goes any node that turns text into text: comfyui-ollama, LLM
Party, a VLM node, or a core String (Multiline) node holding an answer pasted from a chat window.
Refinement is a chain: each Refine Answer gives the scene so far, which the next round's Refine Request
and Refine Answer take, and says whether another round is wanted.
"""

from __future__ import annotations

from typing import ClassVar

from comfy_api.latest import io

from cielr_core.defaults import BOX_THRESHOLD, TEXT_THRESHOLD
from cielr_core.plan import plan_to_json
from cielr_core.progress import Progress
from cielr_core.reasoning import (
    RefinedScene,
    decompose_answer,
    decompose_request,
    labels_answer,
    labels_request,
    refine_answer,
    refine_request,
)
from cielr_core.scene import check_same_size

from .bridge import comfy_progress, single_image

Scene = io.Custom("CIELR_SCENE")
Plan = io.Custom("CIELR_PLAN")
Detector = io.Custom("CIELR_DETECTOR")
Segmenter = io.Custom("CIELR_SEGMENTER")

INSTRUCTION_TIP = ("The edit instruction, as complex and implicit as you like, e.g. \"What in this room "
                   "makes the TV louder? Replace it with a floor lamp.\" Use the same text in every CIELR "
                   "node of the graph.")
SCHEMA_TIP = ("On: the user text ends with the answer's JSON schema, as the pack sends it to a server that "
              "cannot enforce one; right for most LLM nodes. Off: the user text alone, for an LLM node with a "
              "JSON-schema (structured output) input: connect the schema output there.")
ANSWER_TIP = ("The LLM's answer to the request (JSON; code fences and text around it are fine): connect the "
              "text output of any LLM node, or paste the answer here.")


REQUEST_OUTPUTS = [
    io.String.Output("system", display_name="system", tooltip="The system text (the rules of every step; the "
                                                                "same for every request, so servers cache it)."),
    io.String.Output("user", display_name="user", tooltip="The user text: the instruction, the scene where "
                                                            "the step reads one, and the task."),
    io.String.Output("schema", display_name="schema", tooltip="The JSON schema every valid answer follows, "
                                                                "for an LLM node's structured-output input."),
]


class _Node(io.ComfyNode):
    """The schema from class attributes: id, title, the docstring as description, inputs and outputs."""

    NODE_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""

    @classmethod
    def inputs(cls) -> list[io.Input]:
        return []

    @classmethod
    def outputs(cls) -> list[io.Output]:
        return []

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id=cls.NODE_ID, display_name=cls.TITLE, category="CIELR",
                         description=" ".join((cls.__doc__ or "").split()), inputs=cls.inputs(),
                         outputs=cls.outputs())


class _Request(_Node):
    """A step's request as text: ``build(instruction)`` or, with SCENE_TIP, ``build(scene, instruction)``
    is the library's request builder, the one the built-in LLM nodes use."""

    SCENE_TIP: ClassVar[str | None] = None

    @staticmethod
    def build(*args):
        raise NotImplementedError

    @classmethod
    def inputs(cls) -> list[io.Input]:
        scene = [Scene.Input("scene", tooltip=cls.SCENE_TIP)] if cls.SCENE_TIP else []
        return [*scene, io.String.Input("instruction", multiline=True, default="", tooltip=INSTRUCTION_TIP),
                io.Boolean.Input("schema_in_prompt", default=True, tooltip=SCHEMA_TIP)]

    @classmethod
    def outputs(cls) -> list[io.Output]:
        return REQUEST_OUTPUTS

    @classmethod
    def execute(cls, instruction: str, schema_in_prompt: bool, scene=None) -> io.NodeOutput:
        request = cls.build(scene, instruction) if cls.SCENE_TIP else cls.build(instruction)
        user = request.user_with_schema if schema_in_prompt else request.user
        return io.NodeOutput(request.system, user, request.schema_json)


SCENE_SO_FAR_TIP = ("The scene so far: from CIELR Build Scene for the first round, from the previous round's "
                    "CIELR Refine Answer after that (it carries the rounds so far).")


class CIELRLabelsRequest(_Request):
    """The request CIELR Propose Labels sends to its LLM, as text for any LLM node: which objects to look for
    so the instruction can be carried out. Give the answer to CIELR Labels Answer. A vision LLM node may get
    the photo too."""

    NODE_ID, TITLE = "CIELRLabelsRequest", "CIELR Labels Request (any LLM)"
    build = staticmethod(labels_request)


class CIELRRefineRequest(_Request):
    """The request of one CIELR Refine Scene round, as text for any LLM node: is the scene enough for the
    instruction, or which objects are missing? Give the answer to CIELR Refine Answer with the same scene."""

    NODE_ID, TITLE = "CIELRRefineRequest", "CIELR Refine Request (any LLM)"
    SCENE_TIP = SCENE_SO_FAR_TIP
    build = staticmethod(refine_request)


class CIELRDecomposeRequest(_Request):
    """The request CIELR Decompose sends to its LLM, as text for any LLM node: the instruction as a few
    simple actions on objects of the scene. Give the answer to CIELR Decompose Answer with the same scene."""

    NODE_ID, TITLE = "CIELRDecomposeRequest", "CIELR Decompose Request (any LLM)"
    SCENE_TIP = "The scene to plan on: from CIELR Build Scene, Refine Scene or Refine Answer."
    build = staticmethod(decompose_request)


class CIELRLabelsAnswer(_Node):
    """Reads an LLM's answer to CIELR Labels Request as CIELR Propose Labels reads its own: your labels first,
    then the proposed ones, for CIELR Perceive. An answer that does not fit is an error that says what is
    wrong, in the words a repair round would send the LLM."""

    NODE_ID, TITLE = "CIELRLabelsAnswer", "CIELR Labels Answer (any LLM)"

    @classmethod
    def inputs(cls) -> list[io.Input]:
        return [io.String.Input("answer", multiline=True, default="", tooltip=ANSWER_TIP),
                io.String.Input("extra_labels", default="", tooltip="Labels you want detected in any case, "
                                "separated by commas; they come first in the list.")]

    @classmethod
    def outputs(cls) -> list[io.Output]:
        return [io.String.Output("labels", display_name="labels", tooltip="Comma-separated labels for CIELR "
                                 "Perceive.")]

    @classmethod
    def execute(cls, answer: str, extra_labels: str) -> io.NodeOutput:
        return io.NodeOutput(", ".join(labels_answer(answer, extra_labels)))


class CIELRRefineAnswer(_Node):
    """One round of CIELR Refine Scene from an LLM's answer to CIELR Refine Request: the verdict is read and
    checked as the built-in LLM nodes' is, the missing objects are detected and added with new ids. For
    another round, give the scene to the next Refine Request and Refine Answer. Once the chain has stopped
    (the scene is enough, or nothing new was found) later rounds pass the scene on and their LLM is not run."""

    NODE_ID, TITLE = "CIELRRefineAnswer", "CIELR Refine Answer (any LLM)"

    @classmethod
    def inputs(cls) -> list[io.Input]:
        return [
            io.Image.Input("image", tooltip="The photo the scene was built from (missing objects are detected "
                                            "in it)."),
            Scene.Input("scene", tooltip=SCENE_SO_FAR_TIP + " The same scene as the Refine Request's."),
            io.String.Input("answer", multiline=True, default="", lazy=True, tooltip=ANSWER_TIP),
            io.Float.Input("box_threshold", default=BOX_THRESHOLD, min=0.0, max=1.0, step=0.01,
                           tooltip="Detector confidence for the objects looked for in a round."),
            io.Float.Input("text_threshold", default=TEXT_THRESHOLD, min=0.0, max=1.0, step=0.01,
                           tooltip="Minimum confidence that a box matches its label."),
            Detector.Input("detector", optional=True, tooltip="From CIELR GroundingDINO Loader: finds the "
                           "missing objects. Without it the trace says what would be looked for, but nothing "
                           "is added."),
            Segmenter.Input("segmenter", optional=True, tooltip="From CIELR SAM Loader: masks the missing "
                            "objects. Without it new objects get box-shaped masks (the scene notes it)."),
        ]

    @classmethod
    def outputs(cls) -> list[io.Output]:
        return [
            Scene.Output("next_scene", display_name="scene", tooltip="The scene with the objects this round "
                         "added; it carries the rounds so far for the next round."),
            io.String.Output("trace", display_name="trace", tooltip="What happened in every round so far."),
            io.Boolean.Output("another_round", display_name="another_round",
                              tooltip="True when this round added objects: another round asks whether the "
                                      "scene is now enough. False once the chain has stopped."),
        ]

    @classmethod
    def check_lazy_status(cls, scene=None, answer=None, **kwargs) -> list[str]:
        stopped = isinstance(scene, RefinedScene) and scene.stop is not None
        return [] if stopped or answer is not None else ["answer"]

    @classmethod
    def execute(cls, image, scene, answer: str | None, box_threshold: float, text_threshold: float,
                detector=None, segmenter=None) -> io.NodeOutput:
        from cielr_core.perception import detect_objects

        title = "CIELR Refine Answer"
        rgb = single_image(image, title)
        check_same_size(scene, rgb, title)

        cancel = Progress(on_check=comfy_progress().on_check)

        def detect(labels, within):
            return detect_objects(rgb, detector.ready(), None if segmenter is None else segmenter.ready(), labels,
                                  box_threshold=box_threshold, text_threshold=text_threshold, within=within,
                                  progress=cancel)

        result = refine_answer(scene, answer or "", None if detector is None else detect)
        return io.NodeOutput(result.scene, result.text(), result.stop is None)


class CIELRDecomposeAnswer(_Node):
    """Reads an LLM's answer to CIELR Decompose Request as CIELR Decompose reads its own, and checks the plan
    against the scene. An answer that does not fit is an error that names every problem, in the words a
    repair round would send the LLM."""

    NODE_ID, TITLE = "CIELRDecomposeAnswer", "CIELR Decompose Answer (any LLM)"

    @classmethod
    def inputs(cls) -> list[io.Input]:
        return [Scene.Input("scene", tooltip="The scene the Decompose Request was made from."),
                io.String.Input("answer", multiline=True, default="", tooltip=ANSWER_TIP)]

    @classmethod
    def outputs(cls) -> list[io.Output]:
        return [Plan.Output("plan", display_name="plan", tooltip="The plan, for CIELR Inpaint Actions, Action "
                            "Mask or Plan To Masks."),
                io.String.Output("plan_json", display_name="plan_json", tooltip="The plan as JSON, to read or "
                                 "to edit and feed to CIELR Plan From JSON.")]

    @classmethod
    def execute(cls, scene, answer: str) -> io.NodeOutput:
        plan = decompose_answer(scene, answer)
        return io.NodeOutput(plan, plan_to_json(plan))


NODES = (CIELRLabelsRequest, CIELRLabelsAnswer, CIELRRefineRequest, CIELRRefineAnswer, CIELRDecomposeRequest,
         CIELRDecomposeAnswer)
NODE_CLASS_MAPPINGS = {node.NODE_ID: node for node in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {node.NODE_ID: node.TITLE for node in NODES}
