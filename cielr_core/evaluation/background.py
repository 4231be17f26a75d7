"""The strict background check: no resizing, full resolution, the pixels outside a mask only.

PSNR and the maximum absolute difference over the pixels outside the mask, on 8-bit values. A
bit-exact background gives PSNR ``inf`` and maximum difference 0.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Metric
from .pixel import binarise_mask, check_same_shape, psnr, rgb_image


def _outside(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = rgb_image(original, "original image"), rgb_image(edited, "edited image")
    check_same_shape(a, b, "strict background metrics")
    m = binarise_mask(mask)
    if m.shape != a.shape[:2]:
        raise InputError(f"the mask is {m.shape[1]}x{m.shape[0]} but the images are "
                         f"{a.shape[1]}x{a.shape[0]}; "
                         "the strict metrics work at full resolution and need a mask of the same size")
    keep = ~m
    return a[keep], b[keep]


def strict_background(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> dict[str, Metric]:
    """PSNR and maximum absolute difference over the pixels outside ``mask``, at full resolution.

    Keys: psnr (inf when every outside pixel is bit-identical), max_diff (0..255). A mask that
    covers the whole image leaves nothing to measure: both are not computed.
    """
    a, b = _outside(original, edited, mask)
    if a.size == 0:
        reason = "the mask covers the whole image: there are no pixels outside it to compare"
        return {"psnr": Metric.not_computed(reason), "max_diff": Metric.not_computed(reason)}
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"psnr": Metric.ok(psnr(a, b)), "max_diff": Metric.ok(float(diff.max()))}
