"""The answer types the LLM fills in, as bounded pydantic models (see ``cielr_core.llm.schema``).

Fields carry no descriptions: the prompts explain them, and servers that cannot take a schema get
it pasted into the prompt, where every description costs tokens (and weak models copy them into
their answers).

Answers that name objects are built per call from the scene: object ids are an ``enum`` of the
scene's ids in the JSON schema, so a server that decodes with the schema (llama.cpp, vLLM,
OpenAI, local xgrammar) can only write ids that exist, and a server that does not is caught by
the validator with a message that names the bad id. Plan steps are a union keyed by ``op`` whose
branches carry exactly the fields that op needs, so shape errors are impossible under
constrained decoding too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ..llm import Answer
from ..plan import Placement

MAX_LABELS = 6  # labels proposed per instruction
MAX_MISSING = 5  # labels asked for per refinement round
MAX_NOTE = 160
# Characters of an action's prompt in the LLM's answer: a tighter bound of its own than the plan's
# (plan.MAX_PROMPT), so a constrained answer stays a short description, not a paragraph.
MAX_ANSWER_PROMPT = 120
MAX_STEPS = 6
MAX_STEP_TARGETS = 8


# An object name for the detector: a few plain words. The pattern keeps JSON debris and sentences
# out of constrained answers (a weak model otherwise writes "properties" or "type':'array" here); the
# length is in the pattern too because grammar converters that honour a pattern may skip maxLength.
ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=30,
                                             pattern=r"^[A-Za-z][A-Za-z0-9 '-]{0,29}$")]


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ufffd]")


def _tidy(value: Any) -> Any:
    """Free text from a model, before its length is checked: control characters become spaces and
    U+FFFD goes. A grammar counts an invalid UTF-8 byte as one character, but decoding may turn a
    cut-off sequence into several U+FFFD, so without this a constrained answer could still be too long."""
    if isinstance(value, str):
        return _UNPRINTABLE.sub(lambda m: "" if m.group() == "\ufffd" else " ", value)
    return value


Text = BeforeValidator(_tidy)


class LabelList(Answer):
    """Object names worth detecting for an instruction."""

    labels: list[ObjectName] = Field(min_length=1, max_length=MAX_LABELS)


def _ranges(ids: Sequence[int]) -> str:
    """[1, 2, 3, 5] -> '#1-#3, #5' (scenes usually number their objects 1..N)."""
    out: list[str] = []
    ordered = sorted(set(ids))
    start = prev = None
    for i in ordered + [None]:
        if start is not None and (i is None or i != prev + 1):
            out.append(f"#{start}" if start == prev else f"#{start}-#{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(out)


def object_id_type(ids: Sequence[int]) -> Any:
    """An int that must be one of ``ids``: an enum in the schema, a clear message when violated."""
    known = sorted({int(i) for i in ids})
    if not known:
        raise ValueError("an object id type needs at least one id")
    allowed = frozenset(known)
    listed = _ranges(known)

    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"there is no object #{value} in the scene (its ids are {listed})")
        return value

    return Annotated[int, Field(strict=True, json_schema_extra={"enum": known}),
                     AfterValidator(check)]


def _any_of(schema: dict[str, Any]) -> None:
    """json_schema_extra: a discriminated union becomes a plain anyOf (OpenAI strict mode and some
    grammar converters know anyOf only); the ops are distinct constants, so nothing is lost."""
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "oneOf" in node:
                node["anyOf"] = node.pop("oneOf")
                node.pop("discriminator", None)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)


def verdict_type(ids: Sequence[int]) -> type[Answer]:
    """The refinement verdict for a scene with these object ids."""
    within: Any = (object_id_type(ids) | None) if ids else type(None)

    class SceneVerdict(Answer):
        note: Annotated[str, Text] = Field(max_length=MAX_NOTE)
        sufficient: bool
        missing_labels: list[ObjectName] = Field(max_length=MAX_MISSING)
        search_within: within

    return SceneVerdict


def plan_answer_type(ids: Sequence[int]) -> type[Answer]:
    """The plan the LLM writes for a scene with these object ids (converted to ``Plan`` after)."""
    Id = object_id_type(ids)
    Targets = Annotated[list[Id], Field(min_length=1, max_length=MAX_STEP_TARGETS)]

    class RemoveStep(Answer):
        op: Literal["remove"]
        targets: Targets
        prompt: Annotated[str, Text] = Field(max_length=MAX_ANSWER_PROMPT)

    class ReplaceStep(Answer):
        op: Literal["replace"]
        targets: Targets
        prompt: Annotated[str, Text] = Field(min_length=1, max_length=MAX_ANSWER_PROMPT)

    class RecolorStep(Answer):
        op: Literal["recolor"]
        targets: Targets
        prompt: Annotated[str, Text] = Field(min_length=1, max_length=MAX_ANSWER_PROMPT)

    class AddStep(Answer):
        op: Literal["add"]
        prompt: Annotated[str, Text] = Field(min_length=1, max_length=MAX_ANSWER_PROMPT)
        anchor: Id
        placement: Placement

    Step = Annotated[RemoveStep | ReplaceStep | RecolorStep | AddStep, Field(discriminator="op")]

    class PlanAnswer(Answer):
        model_config = ConfigDict(extra="forbid", json_schema_extra=_any_of)

        actions: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    return PlanAnswer


def steps_of(answer: BaseModel) -> list[dict[str, Any]]:
    """The answer's steps as plain dicts (for building a ``Plan``)."""
    return [step.model_dump() for step in answer.actions]  # type: ignore[attr-defined]
