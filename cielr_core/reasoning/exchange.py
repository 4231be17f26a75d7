"""One reasoning request and its answer, as text: what the pack sends, and how an answer is read.

Every reasoning step (labels, refine, plan) builds a ``Request``: the chat messages and the answer
type. The built-in backends send it (``llm.complete(request.messages, request.answer_type)``); any
other LLM can be given the same text (``system``, ``user``, ``schema_json``) and its answer handed
back to ``parse``, which reads it with the parser and validator the backends use. An answer that
does not fit raises ``AnswerError`` with the words a repair round would send the model, so the
user can send them on, or correct the answer by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic

from ..errors import InputError
from ..llm import Message, parse_answer, strict_schema
from ..llm.base import REPAIR_PROMPT, T, to_wire, with_schema_hint
from .prompts import plan_repair_text

MAX_ANSWER_CHARS = 100_000  # an answer to one step is a few hundred characters


class AnswerError(InputError):
    """An answer handed in as text does not fit its step. ``repair`` is what a repair round would
    tell the model; ``problems`` are the problems it names."""

    def __init__(self, what: str, problems: Sequence[str], repair: str, answer: str):
        self.problems = list(problems)
        self.repair = repair
        began = f" The answer began: {answer[:200]!r}." if answer.strip() else ""
        super().__init__(f"{what}.{began} A repair round would tell the LLM:\n{repair}\n"
                         "Send the LLM that after its answer, or correct the answer by hand.")


@dataclass(frozen=True)
class Request(Generic[T]):
    """The messages of one reasoning step (a system text, then one user text) and its answer type."""

    messages: tuple[Message, ...]
    answer_type: type[T]

    @property
    def system(self) -> str:
        return self.messages[0].content

    @property
    def user(self) -> str:
        """The user text as a server that enforces the answer schema gets it."""
        return self.messages[-1].content

    @property
    def user_with_schema(self) -> str:
        """The user text as a server that does not enforce the schema gets it: the schema at its end."""
        return str(with_schema_hint(to_wire(list(self.messages)), self.answer_type)[-1]["content"])

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON schema of the answer, as the backends send it for structured output."""
        return strict_schema(self.answer_type)

    @property
    def schema_json(self) -> str:
        return json.dumps(self.schema, separators=(",", ":"))

    def parse(self, answer: str) -> T:
        """The answer read and validated as the backends read a model's answer; ``AnswerError`` if not."""
        return read_answer(answer, self.answer_type)


def read_answer(answer: str, answer_type: type[T]) -> T:
    """An answer given as text, read with the backends' parser and validator; ``AnswerError`` if it
    does not fit ``answer_type``."""
    if not isinstance(answer, str):
        raise InputError(f"the answer must be text, got {type(answer).__name__}")
    if len(answer) > MAX_ANSWER_CHARS:
        too_long = f"the answer is {len(answer)} characters long; at most {MAX_ANSWER_CHARS} are read"
        raise invalid(answer_type.__name__, [too_long], answer)
    result, problem = parse_answer(answer, answer_type)
    if result is None:
        raise invalid(answer_type.__name__, [problem], answer)
    return result


def invalid(name: str, problems: Sequence[str], answer: str) -> AnswerError:
    """An answer that is not a valid ``name``, stated as the backends' repair round states it."""
    return AnswerError(f"The answer is not a valid {name}: {'; '.join(problems)}", problems,
                       REPAIR_PROMPT.format(problem="; ".join(problems)), answer)


def unusable_plan(problems: Sequence[str], answer: str) -> AnswerError:
    """A plan answer that parses but cannot run on the scene, stated as the plan's repair round states it."""
    return AnswerError("The plan cannot run on this scene: " + "; ".join(problems), problems,
                       plan_repair_text(problems), answer)
