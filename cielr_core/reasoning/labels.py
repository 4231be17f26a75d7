"""Propose labels: the object names worth detecting for an instruction, merged with the user's own.

``propose_labels`` asks a backend; ``labels_request`` and ``labels_answer`` are the same step for an
LLM the pack does not drive (the request as text, the answer text back).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from ..errors import CIELRError, InputError
from ..labels import MAX_LABEL_CHARS, clean_labels
from ..llm import LLM
from ..progress import NO_PROGRESS, Progress
from .answers import MAX_LABELS, LabelList
from .exchange import Request, read_answer
from .prompts import check_instruction, labels_messages

log = logging.getLogger(__name__)


def labels_request(instruction: str, max_labels: int = MAX_LABELS) -> Request[LabelList]:
    """The request that asks for at most ``max_labels`` object names for ``instruction``."""
    check_instruction(instruction)
    _check_max(max_labels)
    return Request(tuple(labels_messages(instruction, max_labels)), LabelList)


def _check_max(max_labels: int) -> None:
    if not 1 <= max_labels <= MAX_LABELS:
        raise InputError(f"max_labels must be between 1 and {MAX_LABELS}, got {max_labels}")


def _extra(extra_labels: str | Iterable[str]) -> list[str]:
    return clean_labels(extra_labels, strip_decoration=True, max_chars=MAX_LABEL_CHARS)


def _merge(extra: list[str], answer: LabelList, max_labels: int) -> list[str]:
    proposed = clean_labels(answer.labels, strip_decoration=True, max_chars=MAX_LABEL_CHARS)[:max_labels]
    labels = clean_labels(extra + proposed)  # both already cleaned: only repeats go
    if not labels:
        raise CIELRError(f"The LLM proposed no usable object names (it answered {answer.labels!r}) and no "
                         "extra labels were given. Type the objects to look for into extra labels, or try a "
                         "stronger model.")
    return labels


def propose_labels(llm: LLM, instruction: str, image: np.ndarray | None = None,
                   extra_labels: str | Iterable[str] = (), max_labels: int = MAX_LABELS,
                   progress: Progress = NO_PROGRESS) -> list[str]:
    """The user's ``extra_labels`` first, then the LLM's proposals (with the image when the backend
    can see), cleaned and without repeats; at most ``max_labels`` come from the LLM."""
    request = labels_request(instruction, max_labels)
    extra = _extra(extra_labels)
    progress.start(1)
    progress.check()
    see = image if image is not None and getattr(llm, "supports_images", False) else None
    if image is not None and see is None:
        log.info("the LLM reads text only; proposing labels from the instruction alone")
    answer = llm.complete(list(request.messages), request.answer_type, image=see)
    progress.advance()
    return _merge(extra, answer, max_labels)


def labels_answer(answer: str, extra_labels: str | Iterable[str] = (), max_labels: int = MAX_LABELS) -> list[str]:
    """``propose_labels``' result from an answer given as text (to ``labels_request``)."""
    _check_max(max_labels)
    extra = _extra(extra_labels)
    return _merge(extra, read_answer(answer, LabelList), max_labels)
