"""The plan: an ordered list of simple edit actions over the scene's objects.

Typed with pydantic because plans arrive as untrusted JSON (from an LLM or typed by a user):
every field is bounded, unknown fields are refused, and ``validate_plan`` checks the plan against
the scene so editing never sees an id that does not exist.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from .errors import CIELRError
from .scene.model import Scene

Op = Literal["remove", "replace", "recolor", "add"]
Placement = Literal["on_top_of", "left_of", "right_of", "above", "below", "in_front_of", "behind", "inside",
                    "near"]
MAX_ACTIONS = 8
MAX_TARGETS = 16
MAX_PROMPT = 200  # characters of an action's prompt, however the plan was written
MAX_OBJECT_ID = 2**31 - 1  # the id range a scene file allows
# A JSON integer, never coerced: `true` is not object #1 and "2" is not object #2 (nothing is guessed).
ObjectId = Annotated[StrictInt, Field(ge=0, le=MAX_OBJECT_ID)]


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Op
    targets: list[ObjectId] = Field(default_factory=list, max_length=MAX_TARGETS,
                               description="ids of the scene objects this action edits (empty for add)")
    prompt: str = Field(default="", max_length=MAX_PROMPT, description="what the region shows afterwards")
    anchor: ObjectId | None = Field(default=None, description="add: the object to place it by")
    placement: Placement | None = Field(default=None, description="add: where, relative to the anchor")
    strength: float | None = Field(default=None, ge=0.0, le=1.0, description="denoise override")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)


class PlanError(CIELRError, ValueError):
    """A plan that cannot run on this scene; the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("The plan cannot run on this scene:\n" + "\n".join(f"  - {p}" for p in problems))


def plan_problems(plan: Plan, scene: Scene) -> list[str]:
    """Everything wrong with ``plan`` for ``scene``, in words an LLM or a person can act on."""
    ids = {o.id for o in scene.objects}
    known = ", ".join(f"#{o.id} {o.label}" for o in scene.objects[:40]) or "none: the scene is empty"
    problems: list[str] = []
    for n, a in enumerate(plan.actions, 1):
        where = f"action {n} ({a.op})"
        missing = [t for t in a.targets if t not in ids]
        if missing:
            problems.append(f"{where} names objects {missing} that are not in the scene (objects: {known})")
        if len(set(a.targets)) != len(a.targets):
            problems.append(f"{where} lists a target twice")
        if a.op == "add":
            if a.anchor is None or a.placement is None:
                problems.append(f"{where} needs an anchor id and a placement")
            elif a.anchor not in ids:
                problems.append(f"{where} anchors on #{a.anchor}, which is not in the scene (objects: {known})")
            if a.targets:
                problems.append(f"{where} must not have targets; say where with anchor and placement")
        else:
            if not a.targets:
                problems.append(f"{where} needs at least one target id")
            if a.anchor is not None or a.placement is not None:
                problems.append(f"{where} must not have an anchor or placement (only add has them)")
        if a.op != "remove" and not a.prompt.strip():
            problems.append(f"{where} needs a prompt saying what the region shows afterwards")
    return problems


def validate_plan(plan: Plan, scene: Scene) -> Plan:
    problems = plan_problems(plan, scene)
    if problems:
        raise PlanError(problems)
    return plan


def plan_from_json(text: str, scene: Scene) -> Plan:
    """Parse a plan typed or edited by a person and check it against the scene; every problem is
    reported, nothing is guessed."""
    return validate_plan(parse_plan(text), scene)


def parse_plan(text: str | bytes) -> Plan:
    """A plan from JSON text ({"actions": [...]} or a bare list of actions), not yet checked
    against any scene. Anything unusable is a PlanError."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise PlanError([f"the plan must be JSON text, got {type(text).__name__}"])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanError([f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"]) from None
    except RecursionError:
        raise PlanError(["not usable JSON: it is nested too deeply"]) from None
    except ValueError as e:  # an integer of thousands of digits, or bytes that are not UTF-8
        raise PlanError([f"not usable JSON: {str(e)[:200]}"]) from None
    if isinstance(data, list):  # a bare list of actions is accepted too
        data = {"actions": data}
    try:
        plan = Plan.model_validate(data)
    except ValidationError as e:
        raise PlanError([f"{'.'.join(map(str, err['loc'])) or 'plan'}: {err['msg']}"
                         for err in e.errors()[:10]]) from None
    return plan


def plan_to_json(plan: Plan, indent: int | None = 1) -> str:
    return plan.model_dump_json(indent=indent, exclude_none=True)
