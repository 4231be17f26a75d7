"""Propose labels: the object names worth detecting for an instruction, merged with the user's own."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from ..errors import CIELRError
from ..labels import MAX_LABEL_CHARS, clean_labels
from ..llm import LLM
from ..progress import NO_PROGRESS, Progress
from .answers import MAX_LABELS, LabelList
from .prompts import check_instruction, labels_messages

log = logging.getLogger(__name__)


def propose_labels(llm: LLM, instruction: str, image: np.ndarray | None = None,
                   extra_labels: str | Iterable[str] = (), max_labels: int = MAX_LABELS,
                   progress: Progress = NO_PROGRESS) -> list[str]:
    """The user's ``extra_labels`` first, then the LLM's proposals (with the image when the backend
    can see), cleaned and without repeats; at most ``max_labels`` come from the LLM."""
    check_instruction(instruction)
    if not 1 <= max_labels <= MAX_LABELS:
        raise ValueError(f"max_labels must be between 1 and {MAX_LABELS}, got {max_labels}")
    extra = clean_labels(extra_labels, strip_decoration=True, max_chars=MAX_LABEL_CHARS)
    progress.start(1)
    progress.check()
    see = image if image is not None and getattr(llm, "supports_images", False) else None
    if image is not None and see is None:
        log.info("the LLM reads text only; proposing labels from the instruction alone")
    answer = llm.complete(labels_messages(instruction, max_labels), LabelList, image=see)
    proposed = clean_labels(answer.labels, strip_decoration=True, max_chars=MAX_LABEL_CHARS)[:max_labels]
    progress.advance()
    labels = clean_labels(extra + proposed)  # both already cleaned: only repeats go
    if not labels:
        raise CIELRError(f"The LLM proposed no usable object names (it answered {answer.labels!r}) and no "
                         "extra labels were given. Type the objects to look for into extra labels, or try a "
                         "stronger model.")
    return labels
