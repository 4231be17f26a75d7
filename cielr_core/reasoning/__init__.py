"""Reasoning: propose labels, refine the scene in a chain of updates, decompose into a plan.

Independent of perception and editing: refinement gets a ``detect(labels, within_box)`` callable,
and the plan types come from ``cielr_core.plan``. No text a model writes is ever executed.
Each step also comes as a request and an answer in text (``*_request``, ``*_answer``), for an LLM
the pack does not drive; both go through the same prompts, parser and checks as the backends.
"""

from .answers import LabelList, object_id_type, plan_answer_type, verdict_type
from .decompose import Decomposition, answer_to_plan, decompose, decompose_answer, decompose_detailed, decompose_request
from .exchange import AnswerError, Request
from .labels import labels_answer, labels_request, propose_labels
from .prompts import SceneView, compact_scene_text, scene_text
from .refine import (
    Detect,
    RefinedScene,
    Refinement,
    RefineRound,
    refine_answer,
    refine_request,
    refine_scene,
    trace_text,
)
