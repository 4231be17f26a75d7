"""The one interface every LLM backend offers, its errors, and the answer checking they share.

A backend turns chat messages (plus, for vision models, one image) and a pydantic answer type into
a validated instance of that type. Parsing is forgiving (code fences, leading prose); validation
is strict; an invalid first answer gets exactly one repair round, then a clear error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import settings as S
from ..errors import CIELRError
from ..images import to_rgb_uint8
from .schema import schema_text

T = TypeVar("T", bound=BaseModel)

IMAGE_MAX_SIDE = 1024  # vision models work at about this size; keeps requests and prompts small

# A chat message in the OpenAI wire format: content is text, or text and image parts.
WireMessage = dict[str, object]


class LLMError(CIELRError):
    """An LLM call failed; the message says why and what to do."""


class LLMConnectionError(LLMError, ConnectionError):
    """The server could not be reached, kept failing, or did not answer in time."""


class LLMTimeoutError(LLMConnectionError, TimeoutError):
    """The server did not answer within the timeout."""


class LLMAnswerError(LLMError):
    """The model's answer did not fit the expected schema, even after one repair round."""

    def __init__(self, schema_name: str, problem: str, answer: str):
        self.problem = problem
        self.answer = answer
        super().__init__(
            f"The LLM's answer is not a valid {schema_name} even after one repair round: {problem}. "
            f"The answer began: {answer[:200]!r}. Try a stronger model, temperature 0, or a server "
            "that supports JSON-schema structured output (llama.cpp, vLLM, Ollama, OpenAI)."
        )


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


@dataclass
class Usage:
    """What a backend has spent so far; benchmarks read it, nothing depends on it."""

    calls: int = 0  # generations (HTTP requests that got an answer, or local generate() runs)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers: int = 0  # complete() calls that returned an object
    first_valid: int = 0  # of those, how many needed no repair
    repairs: int = 0  # repair rounds started
    # prompt tokens the model actually evaluated, after the prefix it reused from the previous
    # request (llama.cpp's own count); None when the backend or server does not say
    prompt_evaluated: int | None = None

    def evaluated(self, tokens: int | None) -> None:
        if tokens is not None:
            self.prompt_evaluated = (self.prompt_evaluated or 0) + int(tokens)


@runtime_checkable
class LLM(Protocol):
    """messages (+ optional image) + answer schema -> validated answer."""

    supports_images: bool
    usage: Usage

    def complete(self, messages: list[Message], schema: type[T], image: np.ndarray | None = None) -> T:
        ...


REPAIR_PROMPT = (
    "Your previous answer was not valid: {problem}. "
    "Reply with the corrected JSON object only, no other text."
)


def complete_with_repair(generate: Callable[[list[WireMessage]], str], messages: list[WireMessage],
                         schema: type[T], usage: Usage) -> T:
    """Ask, validate, and on failure ask once more with the problem stated; then give up clearly."""
    answer = generate(messages)
    result, problem = parse_answer(answer, schema)
    if result is None:
        usage.repairs += 1
        repair = [*messages, {"role": "assistant", "content": answer[:4000]},
                  {"role": "user", "content": REPAIR_PROMPT.format(problem=problem)}]
        answer = generate(repair)
        result, problem = parse_answer(answer, schema)
        if result is None:
            raise LLMAnswerError(schema.__name__, problem, answer)
    else:
        usage.first_valid += 1
    usage.answers += 1
    return result


def parse_answer(text: str, schema: type[T]) -> tuple[T | None, str]:
    """The validated answer, or None and a one-line statement of what is wrong with it."""
    data, problem = extract_json(text)
    if data is None:
        return None, problem
    try:
        return schema.model_validate(data), ""
    except ValidationError as e:
        found = describe_validation_error(e)
        # A truncated object can leave an inner object that parses; the outer break is the news.
        return None, f"{problem}; the next JSON object in it: {found}" if problem else found


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_MAX_STARTS = 64  # candidate '{' positions tried; answers are short, this only bounds bad input


def extract_json(text: str) -> tuple[object | None, str]:
    """The first JSON object in an answer (inside a ``` fence if there is one).

    Returns (object, "") when the first '{' starts a valid object; (object, problem) when an
    earlier '{' starts malformed JSON and a later one parses; (None, problem) when none parses.
    """
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    # strict=False lets raw control characters stand inside strings: xgrammar's bounded strings
    # allow them and some models write raw tabs. The schema, not the parser, judges the content.
    decoder = json.JSONDecoder(strict=False)
    first_error = ""
    for i, match in enumerate(re.finditer(r"\{", body)):
        if i >= _MAX_STARTS:
            break
        try:
            data, _ = decoder.raw_decode(body, match.start())
            return data, first_error
        except json.JSONDecodeError as e:
            first_error = first_error or _decode_problem(e, body, match.start())
    if first_error:
        return None, first_error
    return None, "the answer holds no JSON object" if text.strip() else "the answer is empty"


def _decode_problem(error: json.JSONDecodeError, body: str, start: int) -> str:
    if error.pos >= len(body.rstrip()) or error.msg.startswith("Unterminated string"):
        return "the JSON is cut off before it ends (answer too long for max tokens?)"
    return f"the JSON is malformed ({error.msg} at character {error.pos - start})"


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """'labels.3: String should have at most 40 characters; ...' (the first few problems)."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "the object"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def to_wire(messages: list[Message]) -> list[WireMessage]:
    if not messages:
        raise LLMError("No messages to send: give at least one user message.")
    return [{"role": m.role, "content": m.content} for m in messages]


def check_sampling(temperature: float, seed: int, max_tokens: int) -> None:
    """InputError when a backend's sampling settings are outside what the schema allows."""
    for setting, value in ((S.TEMPERATURE, temperature), (S.LLM_SEED, seed), (S.LLM_MAX_TOKENS, max_tokens)):
        setting.check(value)


def with_schema_hint(messages: list[WireMessage], schema: type[BaseModel]) -> list[WireMessage]:
    """The schema stated at the end of the last user message. Not in the system message: it differs
    per answer type, and everything before it would then stop being a prefix the server can reuse."""
    hint = ("Answer with one JSON object, and nothing else, that follows this JSON schema: "
            + schema_text(schema))
    out = list(messages)
    last_user = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
    if last_user is None:
        return [*out, {"role": "user", "content": hint}]
    content = out[last_user]["content"]
    if isinstance(content, str):
        content = f"{content}\n\n{hint}"
    else:  # text and image parts
        content = [*content, {"type": "text", "text": hint}]
    out[last_user] = {**out[last_user], "content": content}
    return out


def settings_repr(obj: object, **settings: object) -> str:
    """``Name(key=value, ...)`` of a backend's settings, for logs and the nodes' reports."""
    return f"{type(obj).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items())})"


def fit_image(image: np.ndarray, max_side: int = IMAGE_MAX_SIDE) -> np.ndarray:
    """The image as a new RGB uint8 array, shrunk (aspect kept) so no side is longer than ``max_side``."""
    from PIL import Image

    pil = Image.fromarray(to_rgb_uint8(image))
    pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(pil).copy()
