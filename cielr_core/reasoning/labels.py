"""Propose labels: the object names worth detecting for an instruction, merged with the user's own."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import numpy as np

from ..errors import CIELRError
from ..llm import LLM
from ..progress import NO_PROGRESS, Progress
from .answers import MAX_LABELS, LabelList
from .prompts import check_instruction, labels_messages

log = logging.getLogger(__name__)

MAX_LABEL_CHARS = 40
_SPLIT = re.compile(r"[,;\n]|\s\.\s")
_ARTICLE = re.compile(r"^(?:the|a|an|some)\s+")


def clean_labels(labels: str | Iterable[str]) -> list[str]:
    """Tidy labels from a person or an LLM: split on commas, semicolons and new lines; trim, lower
    case, collapse spaces, drop trailing dots, drop what names nothing, drop repeats; keep order.
    Labels longer than 40 characters are cut at a word boundary."""
    if isinstance(labels, str):
        labels = [labels]
    parts = [p for x in labels for p in _SPLIT.split(str(x))]
    out: list[str] = []
    for part in parts:
        label = " ".join(part.strip().strip(".").strip().lower().split())
        label = label.strip("\"'`*-").strip()
        label = _ARTICLE.sub("", label)
        if len(label) > MAX_LABEL_CHARS:
            label = label[:MAX_LABEL_CHARS].rsplit(" ", 1)[0]
        if re.search(r"\w", label) and label not in out:
            out.append(label)
    return out


def propose_labels(llm: LLM, instruction: str, image: np.ndarray | None = None,
                   extra_labels: str | Iterable[str] = (), max_labels: int = MAX_LABELS,
                   progress: Progress = NO_PROGRESS) -> list[str]:
    """The user's ``extra_labels`` first, then the LLM's proposals (with the image when the backend
    can see), cleaned and without repeats; at most ``max_labels`` come from the LLM."""
    check_instruction(instruction)
    if not 1 <= max_labels <= MAX_LABELS:
        raise ValueError(f"max_labels must be between 1 and {MAX_LABELS}, got {max_labels}")
    extra = clean_labels(extra_labels)
    progress.start(1)
    progress.check()
    see = image if image is not None and getattr(llm, "supports_images", False) else None
    if image is not None and see is None:
        log.info("the LLM reads text only; proposing labels from the instruction alone")
    answer = llm.complete(labels_messages(instruction, max_labels), LabelList, image=see)
    proposed = clean_labels(answer.labels)[:max_labels]
    progress.advance()
    labels = clean_labels(extra + proposed)
    if not labels:
        raise CIELRError(f"The LLM proposed no usable object names (it answered {answer.labels!r}) and no "
                         "extra labels were given. Type the objects to look for into extra labels, or try a "
                         "stronger model.")
    return labels
