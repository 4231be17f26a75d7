"""Reasoning with any LLM node: each step's request out as text, the answer text back in.

For every reasoning step a Request node gives the exact request the pack would send (system text, user
text, the answer's JSON schema) and an Answer node reads the LLM's answer with the same parser and checks
as the built-in LLM nodes. Between them goes any node that turns text into text: comfyui-ollama, LLM
Party, a VLM node, or a core String (Multiline) node holding an answer pasted from a chat window.
Refinement is a chain: each Refine Answer gives the scene so far, which the next round's Refine Request
and Refine Answer take, and says whether another round is wanted.
"""

from __future__ import annotations

from comfy_api.latest import io

from cielr_core import settings as S
from cielr_core.plan import plan_to_json
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

from .base import REASONING, CIELRNode, Detector, Plan, Scene, Segmenter, out, socket, widget
from .bridge import cancel_only, single_image

REQUEST_OUTPUTS = (
    out(io.String, "system", "The system text: the rules of every step, alike in every request (servers cache it)."),
    out(io.String, "user", "The user text: the instruction, the scene where the step reads one, and the task."),
    out(io.String, "schema", "The JSON schema every valid answer follows, for an LLM node's structured-output "
                             "input."),
)
SCENE_SO_FAR_TIP = ("The scene so far: from CIELR Build Scene for the first round, from the previous round's "
                    "CIELR Refine Answer after that (it carries the rounds so far).")


class _Request(CIELRNode, stage=REASONING):
    """A step's request as text: ``build(instruction)`` or, with SCENE_TIP, ``build(scene, instruction)``
    is the library's request builder, the one the built-in LLM nodes use."""

    SCENE_TIP: str | None = None
    OUTPUTS = REQUEST_OUTPUTS

    @staticmethod
    def build(*args):
        raise NotImplementedError

    @classmethod
    def inputs(cls) -> list[io.Input]:
        scene = [socket(Scene, "scene", cls.SCENE_TIP)] if cls.SCENE_TIP else []
        return [*scene, widget(S.INSTRUCTION), widget(S.SCHEMA_IN_PROMPT)]

    @classmethod
    def execute(cls, instruction: str, schema_in_prompt: bool, scene=None) -> io.NodeOutput:
        request = cls.build(scene, instruction) if cls.SCENE_TIP else cls.build(instruction)
        user = request.user_with_schema if schema_in_prompt else request.user
        return io.NodeOutput(request.system, user, request.schema_json)


class CIELRLabelsRequest(_Request, title="CIELR Labels Request (any LLM)",
                         aliases=("labels prompt", "any llm labels", "ollama labels")):
    """The request CIELR Propose Labels sends to its LLM, as text for any LLM node: which objects to look for
    so the instruction can be carried out. Give the answer to CIELR Labels Answer. A vision LLM node may get
    the photo too."""

    build = staticmethod(labels_request)


class CIELRRefineRequest(_Request, title="CIELR Refine Request (any LLM)",
                         aliases=("refine prompt", "any llm refine", "ollama refine")):
    """The request of one CIELR Refine Scene round, as text for any LLM node: is the scene enough for the
    instruction, or which objects are missing? Give the answer to CIELR Refine Answer with the same scene."""

    SCENE_TIP = SCENE_SO_FAR_TIP
    build = staticmethod(refine_request)


class CIELRDecomposeRequest(_Request, title="CIELR Decompose Request (any LLM)",
                            aliases=("decompose prompt", "any llm plan", "ollama plan")):
    """The request CIELR Decompose sends to its LLM, as text for any LLM node: the instruction as a few
    simple actions on objects of the scene. Give the answer to CIELR Decompose Answer with the same scene."""

    SCENE_TIP = "The scene to plan on: from CIELR Build Scene, Refine Scene or Refine Answer."
    build = staticmethod(decompose_request)


class CIELRLabelsAnswer(CIELRNode, title="CIELR Labels Answer (any LLM)", stage=REASONING,
                        aliases=("labels from answer", "parse labels")):
    """Reads an LLM's answer to CIELR Labels Request as CIELR Propose Labels reads its own: your labels first,
    then the proposed ones, for CIELR Perceive. An answer that does not fit is an error that says what is
    wrong, in the words a repair round would send the LLM."""

    OUTPUTS = (out(io.String, "labels", "Comma-separated labels for CIELR Perceive."),)
    INPUTS = (widget(S.ANSWER), widget(S.EXTRA_LABELS))

    @classmethod
    def execute(cls, answer: str, extra_labels: str) -> io.NodeOutput:
        return io.NodeOutput(", ".join(labels_answer(answer, extra_labels)))


class CIELRRefineAnswer(CIELRNode, title="CIELR Refine Answer (any LLM)", stage=REASONING,
                        aliases=("refine from answer", "parse verdict")):
    """One round of CIELR Refine Scene from an LLM's answer to CIELR Refine Request: the verdict is read and
    checked as the built-in LLM nodes' is, the missing objects are detected and added with new ids. For
    another round, give the scene to the next Refine Request and Refine Answer. Once the chain has stopped
    (the scene is enough, or nothing new was found) later rounds pass the scene on and their LLM is not run."""

    OUTPUTS = (
        out(Scene, "scene", "The scene with the objects this round added; it carries the rounds so far for the next "
                            "round."),
        out(io.String, "trace", "What happened in every round so far."),
        out(io.Boolean, "another_round", "True when this round added objects: another round asks whether the scene "
                                         "is now enough. False once the chain has stopped."),
    )
    INPUTS = (
        socket(io.Image, "image", "The photo the scene was built from (missing objects are detected in it)."),
        socket(Scene, "scene", SCENE_SO_FAR_TIP + " The same scene as the Refine Request's."),
        widget(S.ANSWER, lazy=True),  # not asked for once the chain has stopped, so its LLM node does not run
        widget(S.BOX_THRESHOLD),
        widget(S.TEXT_THRESHOLD),
        socket(Detector, "detector", "From CIELR GroundingDINO Loader: finds the missing objects. Without it the "
                                     "trace says what would be looked for, but nothing is added.", optional=True),
        socket(Segmenter, "segmenter", "From CIELR SAM Loader: masks the missing objects. Without it new objects "
                                       "get box-shaped masks (the scene notes it).", optional=True),
    )

    @classmethod
    def check_lazy_status(cls, scene=None, answer=None, **kwargs) -> list[str]:
        stopped = isinstance(scene, RefinedScene) and scene.stop is not None
        return [] if stopped or answer is not None else ["answer"]

    @classmethod
    def execute(cls, image, scene, answer: str | None, box_threshold: float, text_threshold: float,
                detector=None, segmenter=None) -> io.NodeOutput:
        from cielr_core.pipeline import PipelineSettings, detector_callable

        rgb = single_image(image, cls.TITLE)
        check_same_size(scene, rgb, cls.TITLE)
        looks = PipelineSettings(box_threshold=box_threshold, text_threshold=text_threshold)
        detect = None if detector is None else detector_callable(rgb, detector, segmenter, looks, cancel_only())
        result = refine_answer(scene, answer or "", detect)
        return io.NodeOutput(result.scene, result.text(), result.stop is None)


class CIELRDecomposeAnswer(CIELRNode, title="CIELR Decompose Answer (any LLM)", stage=REASONING,
                           aliases=("plan from answer", "parse plan")):
    """Reads an LLM's answer to CIELR Decompose Request as CIELR Decompose reads its own, and checks the plan
    against the scene. An answer that does not fit is an error that names every problem, in the words a
    repair round would send the LLM."""

    OUTPUTS = (
        out(Plan, "plan", "The plan, for CIELR Inpaint Actions, Action Mask or Plan To Masks."),
        out(io.String, "plan_json", "The plan as JSON, to read or to edit and feed to CIELR Plan From JSON."),
    )
    INPUTS = (socket(Scene, "scene", "The scene the Decompose Request was made from."), widget(S.ANSWER))

    @classmethod
    def execute(cls, scene, answer: str) -> io.NodeOutput:
        plan = decompose_answer(scene, answer)
        return io.NodeOutput(plan, plan_to_json(plan))


NODES = (CIELRLabelsRequest, CIELRLabelsAnswer, CIELRRefineRequest, CIELRRefineAnswer, CIELRDecomposeRequest,
         CIELRDecomposeAnswer)
