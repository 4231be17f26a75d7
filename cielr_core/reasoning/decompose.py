"""Decomposition: an instruction and a scene -> an ordered plan of simple actions over the scene's ids.

The answer type is built per call from the scene (ids as an enum, one branch per op), so a
schema-constrained server can only write plans whose targets exist. The result is checked with
``plan_problems`` all the same; an invalid plan gets one repair round that states the problems,
then a ``PlanError`` listing exactly what was wrong. (Answers that are not valid JSON of the right
shape are repaired once by the backend itself and end in ``LLMAnswerError``.)

``decompose_request`` and ``decompose_answer`` are the same step for an LLM the pack does not drive:
the request as text, and the answer text back, read and checked the same way; an invalid answer
raises ``AnswerError`` with the problems a repair round would state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from ..llm import LLM
from ..plan import Plan, PlanError, plan_problems
from ..progress import NO_PROGRESS, Progress
from ..scene import Scene
from .answers import plan_answer_type, steps_of
from .exchange import Request, read_answer, unusable_plan
from .prompts import SCENE_CHARS, check_instruction, decompose_messages, plan_repair_messages, scene_text

GIVE_UP_HINT = ("the LLM could not correct its plan in one repair round: try a stronger model or "
                "temperature 0, or write the plan as JSON with CIELR Plan From JSON")


@dataclass
class Decomposition:
    plan: Plan
    first_problems: list[str] = field(default_factory=list)  # what was wrong with the first plan, if anything

    @property
    def repaired(self) -> bool:
        return bool(self.first_problems)


def answer_to_plan(answer, scene: Scene) -> tuple[Plan | None, list[str]]:
    """A ``Plan`` from the LLM's answer (repeated targets dropped, prompts trimmed) and its problems."""
    actions = []
    for step in steps_of(answer):
        step["targets"] = list(dict.fromkeys(step.get("targets", [])))
        step["prompt"] = " ".join(step.get("prompt", "").split())
        actions.append(step)
    try:
        plan = Plan.model_validate({"actions": actions})
    except ValidationError as e:  # cannot happen for answers of plan_answer_type; kept as a guard
        return None, [f"{'.'.join(map(str, err['loc'])) or 'plan'}: {err['msg']}" for err in e.errors()[:5]]
    return plan, plan_problems(plan, scene)


def _answer_type(scene: Scene, scene_chars: int):
    """The scene as the LLM reads it, and the plan answer type over the ids it lists."""
    if not scene.objects:
        raise PlanError([("the scene has no objects, so no action can name one: look for the objects the "
                          "instruction is about first (more or other labels, lower thresholds)")])
    view = scene_text(scene, scene_chars)
    return view, plan_answer_type(view.ids)


def decompose_request(scene: Scene, instruction: str, *, scene_chars: int = SCENE_CHARS) -> Request:
    """The request that asks for the plan of ``instruction`` over ``scene``."""
    check_instruction(instruction)
    view, answer_type = _answer_type(scene, scene_chars)
    return Request(tuple(decompose_messages(instruction, view)), answer_type)


def decompose_answer(scene: Scene, answer: str, *, scene_chars: int = SCENE_CHARS) -> Plan:
    """The plan in an answer given as text (to ``decompose_request`` for the same scene), checked
    against the scene; ``AnswerError`` naming the problems when it is not a plan that can run."""
    _, answer_type = _answer_type(scene, scene_chars)
    plan, problems = answer_to_plan(read_answer(answer, answer_type), scene)
    if problems:
        raise unusable_plan(problems, answer)
    return plan


def decompose_detailed(scene: Scene, instruction: str, llm: LLM, *, scene_chars: int = SCENE_CHARS,
                       progress: Progress = NO_PROGRESS) -> Decomposition:
    """Like ``decompose``, and says whether the first plan needed a repair round."""
    request = decompose_request(scene, instruction, scene_chars=scene_chars)
    messages, schema = list(request.messages), request.answer_type
    progress.start(1)
    progress.check()
    answer = llm.complete(messages, schema)
    plan, problems = answer_to_plan(answer, scene)
    if not problems:
        progress.advance()
        return Decomposition(plan)
    progress.check()
    repair = plan_repair_messages(messages, answer.model_dump_json(), problems)
    plan, still = answer_to_plan(llm.complete(repair, schema), scene)
    if still:
        raise PlanError([*still, GIVE_UP_HINT])
    progress.advance()
    return Decomposition(plan, problems)


def decompose(scene: Scene, instruction: str, llm: LLM, *, scene_chars: int = SCENE_CHARS,
              progress: Progress = NO_PROGRESS) -> Plan:
    """The plan for ``instruction`` over ``scene``, validated against it.

    Raises ``PlanError`` (naming every problem) when the LLM's plan is still invalid after one
    repair round, and the backend's ``LLMError`` family when the LLM cannot be reached or its
    answer is not a plan at all.
    """
    return decompose_detailed(scene, instruction, llm, scene_chars=scene_chars, progress=progress).plan
