"""Object labels: the one set of rules for every label that reaches the detector, a scene or a prompt.

Labels arrive typed by a person (the Perceive node, ``--labels``), proposed by an LLM, or handed to
``Detector.detect`` by library code; all of them go through ``clean_labels``. Callers differ only in
the two options (an LLM's answers carry quotes and articles and may ramble).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InputError

MAX_LABEL_CHARS = 40  # an LLM's or a person's proposed label: a name, not a sentence
# Between labels: commas, semicolons, new lines, and GroundingDINO's own " . " caption separator.
SEPARATORS = re.compile(r"[,;\n]|\s\.\s")
_DECORATION = "\"'`*-"  # quotes and markdown bullets around a label in an LLM's answer
_ARTICLE = re.compile(r"^(?:the|a|an|some)\s+")


def clean_labels(labels: str | Iterable[str], *, strip_decoration: bool = False,
                 max_chars: int | None = None) -> list[str]:
    """Tidy labels, keeping their order. The rules, in turn:

    1. a string, and each string of a list, is split at ``SEPARATORS``;
    2. each part is trimmed, lower-cased, its inner spaces collapsed, dots at either end dropped;
    3. ``strip_decoration``: quotes, backticks, asterisks and dashes around it and a leading
       "the", "a", "an" or "some" are dropped too;
    4. ``max_chars``: a longer label is cut at the last word boundary within the limit;
    5. a label without a letter or digit names nothing and is dropped, and so is a repeat.
    """
    items = [labels] if isinstance(labels, str) else list(labels)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"labels must be strings, got {type(item).__name__}")
        for part in SEPARATORS.split(item):
            label = " ".join(part.strip().strip(".").strip().lower().split())
            if strip_decoration:
                label = _ARTICLE.sub("", label.strip(_DECORATION).strip())
            if max_chars is not None and len(label) > max_chars:
                label = label[:max_chars].rsplit(" ", 1)[0]
            if any(ch.isalnum() for ch in label) and label not in out:
                out.append(label)
    return out
