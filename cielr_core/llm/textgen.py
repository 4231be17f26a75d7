"""An LLM that is a plain text generator: chat messages (+ one image) in, text out.

Some generators offer no structured output: ComfyUI's text encoders that generate text (a CLIP
whose encoder is an LLM) take one prompt, apply the model's own chat template and sample without
a grammar. ``TextGenLLM`` makes such a generator an ``LLM``: the answer's JSON schema is stated in
the prompt, and answers go through the same parsing, validation and one repair round as the other
backends. A reasoning block that thinking models write first (``<think>...</think>``) is dropped
before parsing. ``one_turn`` folds a conversation into the single user turn such a generator takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from .base import (
    IMAGE_MAX_SIDE,
    LLMError,
    Message,
    T,
    Usage,
    WireMessage,
    complete_with_repair,
    fit_image,
    to_wire,
    with_schema_hint,
)

# (messages, image or None) -> the model's answer text
Generate = Callable[[list[WireMessage], "np.ndarray | None"], str]

_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
PREVIOUS_ANSWER = "Your previous answer was:"


class TextGenLLM:
    """An ``LLM`` over ``generate(messages, image) -> text``.

    ``supports_images`` says the generator reads the image it is given (shrunk to at most
    ``IMAGE_MAX_SIDE`` pixels a side, RGB uint8); ``name`` names it in errors and reports. Every
    call counts in ``usage.calls``; token counts stay 0 (the generator does not report them).
    """

    def __init__(self, generate: Generate, supports_images: bool = False, name: str = "text generator"):
        if not callable(generate):
            raise TypeError(f"generate must be callable, got {type(generate).__name__}")
        self.generate = generate
        self.supports_images = bool(supports_images)
        self.name = name
        self.usage = Usage()

    def __repr__(self) -> str:
        return f"TextGenLLM({self.name!r}, supports_images={self.supports_images})"

    def complete(self, messages: list[Message], schema: type[T], image: np.ndarray | None = None) -> T:
        if image is not None and not self.supports_images:
            raise LLMError(f"The {self.name} reads text only; leave the image out.")
        # nothing constrains the decoding, so the model has to read the schema
        wire = with_schema_hint(to_wire(messages), schema)
        if image is not None:
            image = fit_image(image, IMAGE_MAX_SIDE)
        return complete_with_repair(lambda msgs: self._ask(msgs, image), wire, schema, self.usage)

    def _ask(self, messages: list[WireMessage], image: np.ndarray | None) -> str:
        text = self.generate(messages, image)
        if not isinstance(text, str):
            raise LLMError(f"The {self.name} answered with {type(text).__name__}, not text.")
        self.usage.calls += 1
        return drop_thinking(text)


def drop_thinking(text: str) -> str:
    """The answer without a leading ``<think>...</think>`` block."""
    return _THINKING.sub("", text, count=1).lstrip()


def one_turn(messages: list[WireMessage]) -> str:
    """A conversation as one user turn, for generators that wrap a single prompt in their own chat
    template: the system text, then the user's, and in a repair round the model's previous answer
    and the request to correct it, in order, separated by blank lines."""
    parts = []
    for m in messages:
        content = m["content"]
        if not isinstance(content, str):
            raise LLMError("A one-turn generator takes text messages; the image goes beside them.")
        parts.append(f"{PREVIOUS_ANSWER}\n{content}" if m["role"] == "assistant" else content)
    return "\n\n".join(parts)
