"""Reasoning: propose labels, refine the scene in a chain of updates, decompose into a plan.

Independent of perception and editing: refinement gets a ``detect(labels, within_box)`` callable,
and the plan types come from ``cielr_core.plan``. No text a model writes is ever executed.
"""

from .answers import LabelList, object_id_type, plan_answer_type, verdict_type
from .decompose import Decomposition, answer_to_plan, decompose, decompose_detailed
from .labels import propose_labels
from .prompts import SceneView, compact_scene_text, scene_text
from .refine import Detect, Refinement, RefineRound, refine_scene, trace_text

__all__ = [
    "Decomposition",
    "Detect",
    "LabelList",
    "RefineRound",
    "Refinement",
    "SceneView",
    "answer_to_plan",
    "compact_scene_text",
    "decompose",
    "decompose_detailed",
    "object_id_type",
    "plan_answer_type",
    "propose_labels",
    "refine_scene",
    "scene_text",
    "trace_text",
    "verdict_type",
]
