"""Every metric for one edited sample, in one flat dict of ``Metric`` by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .background import strict_background
from .base import Metric, Unavailable
from .clip import CLIPScorer
from .idcs import Describe, Score, idcs
from .lpips import LPIPSModel
from .protocol import PROTOCOL_SIZES, smartedit_metrics
from .selection import target_selection


def _guard(keys: Sequence[str], compute: Callable[[], Mapping[str, Metric]]) -> dict[str, Metric]:
    """Run one group of metrics; an error fails every metric of the group with its reason."""
    try:
        return dict(compute())
    except Exception as e:  # noqa: BLE001
        reason = f"{type(e).__name__}: {e}"
        return {k: Metric.failure(reason) for k in keys}


def evaluate_edit(original: np.ndarray, edited: np.ndarray, gt_mask: np.ndarray, *,
                  target_text: str | None = None, edited_mask: np.ndarray | None = None,
                  instruction: str | None = None, sizes: Sequence[int] = PROTOCOL_SIZES,
                  lpips: LPIPSModel | Unavailable | None = None, clip: CLIPScorer | Unavailable | None = None,
                  describe: Describe | None = None, score: Score | None = None,
                  soft_mask: bool = False) -> dict[str, Metric]:
    """Every metric for one edited sample, never raising: a flat dict of ``Metric`` by name.

    - ``psnr_<size>``, ``ssim_<size>``, ``lpips_<size>``, ``mse_<size>``, ``clip_<size>`` for each
      size in ``sizes`` (the SmartEdit protocol);
    - ``strict_psnr``, ``strict_max_diff`` (outside the ground-truth mask, full resolution);
    - ``outside_edit_psnr``, ``outside_edit_max_diff`` (outside ``edited_mask``, the region the method
      says it edited: a bit-exact stitch gives inf / 0);
    - ``iou``, ``precision``, ``recall`` (``edited_mask`` against ``gt_mask``);
    - ``idcs``.
    Metrics that need an input not given are not computed; a group that raises is failed.
    """
    out: dict[str, Metric] = {}
    for size in sizes:
        names = [f"{k}_{size}" for k in ("psnr", "ssim", "lpips", "mse", "clip")]
        out.update(_guard(names, lambda size=size: {
            f"{k}_{size}": v
            for k, v in smartedit_metrics(original, edited, gt_mask, target_text, size=size, lpips=lpips,
                                          clip=clip, soft_mask=soft_mask).items()}))
    out.update(_guard(["strict_psnr", "strict_max_diff"], lambda: {
        f"strict_{k}": v for k, v in strict_background(original, edited, gt_mask).items()}))
    edit_keys = ["outside_edit_psnr", "outside_edit_max_diff", "iou", "precision", "recall"]
    if edited_mask is None:
        out.update({k: Metric.not_computed("no edited-region mask given") for k in edit_keys})
    else:
        out.update(_guard(edit_keys[:2], lambda: {
            f"outside_edit_{k}": v for k, v in strict_background(original, edited, edited_mask).items()}))
        out.update(_guard(edit_keys[2:], lambda: {
            k: Metric.ok(v) for k, v in target_selection(edited_mask, gt_mask).items()}))
    if instruction is None:
        out["idcs"] = Metric.not_computed("no instruction given")
    else:
        out["idcs"] = idcs(instruction, original, edited, describe, score)
    return out
