"""Target selection: the region the method edited against the ground-truth mask (IoU, precision,
recall).

A ratio whose denominator is 0 is 1.0 when both masks are empty (nothing to find and nothing
found) and 0.0 otherwise; so an empty prediction for a non-empty target scores 0 on all three, and
a non-empty prediction for an empty target scores 0 on all three.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .pixel import binarise_mask


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def _pair(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = binarise_mask(predicted), binarise_mask(truth)
    if p.shape != t.shape:
        raise InputError(f"the edited-region mask is {p.shape[1]}x{p.shape[0]} but the ground-truth mask is "
                         f"{t.shape[1]}x{t.shape[0]}; both must be at the image's resolution")
    return p, t


def target_selection(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU, precision and recall of the edited region against the ground truth (see the module doc)."""
    p, t = _pair(predicted, truth)
    tp = int(np.count_nonzero(p & t))
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    both_empty = n_p == 0 and n_t == 0
    return {"iou": _ratio(tp, n_p + n_t - tp, both_empty), "precision": _ratio(tp, n_p, both_empty),
            "recall": _ratio(tp, n_t, both_empty)}
