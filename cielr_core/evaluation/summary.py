"""Averages over samples, counting failures and not-computed metrics apart, both ways."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from .base import Metric

# The value a failed sample counts as in "failures counted as failures", where the scale has a
# natural worst end. PSNR, MSE, LPIPS, SSIM and max-diff have none that is not arbitrary: for
# them that view gives the counts and success rate beside the protocol mean, not a made-up number.
WORST_VALUES = {"iou": 0.0, "precision": 0.0, "recall": 0.0, "clip": 0.0, "idcs": 1.0}


class SampleResult(BaseModel):
    """One sample's metrics; ``failure`` says why the sample as a whole failed (its metrics then count
    as failed whatever they hold)."""

    id: str
    metrics: dict[str, Metric] = Field(default_factory=dict)
    failure: str | None = None


def _base_name(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None, "n_inf": 0,
                "mean_finite": None}
    finite = [v for v in values if math.isfinite(v)]
    # With an infinity among the values the mean is that infinity (sum, not fsum: fsum refuses them).
    mean = math.fsum(values) / len(values) if len(finite) == len(values) else sum(values) / len(values)
    return {"n": len(values), "mean": mean, "median": statistics.median(values), "min": min(values),
            "max": max(values), "n_inf": len(values) - len(finite),
            "mean_finite": math.fsum(finite) / len(finite) if finite else None}


def summarise(results: Iterable[SampleResult], max_reasons: int = 5) -> dict[str, Any]:
    """Averages over samples, counting failures and not-computed metrics apart, both ways.

    For each metric name:

    - ``protocol``: the original protocol, which drops failures: n, mean, median, min, max over the
      samples where the metric has a value. ``mean`` is inf when any value is inf (e.g. strict
      PSNR of bit-exact backgrounds); ``n_inf`` and ``mean_finite`` say more.
    - ``all``: every sample, failures counted as failures: ``total`` samples, ``ok``, ``failed``
      (the metric failed or the whole sample failed), ``not_computed`` (no model: neither success nor
      failure), ``success_rate`` = ok / (ok + failed), and ``mean_failures_as_worst`` where the
      metric has a natural worst value (``WORST_VALUES``: a failed sample counts as that value).
    - ``reasons``: the most common reasons for failed / not computed, with counts.

    ``samples`` gives total, failed (whole-sample failures) and completed. The result may hold
    ``inf`` (``base.json_number`` writes it as a string in JSON).
    """
    items = list(results)
    names: list[str] = []
    for r in items:
        for k in r.metrics:
            if k not in names:
                names.append(k)
    out: dict[str, Any] = {"samples": {"total": len(items),
                                       "failed": sum(r.failure is not None for r in items),
                                       "completed": sum(r.failure is None for r in items)},
                           "metrics": {}}
    for name in names:
        values: list[float] = []
        failed = not_computed = 0
        fail_reasons: Counter[str] = Counter()
        nc_reasons: Counter[str] = Counter()
        for r in items:
            m = r.metrics.get(name)
            if r.failure is not None:
                failed += 1
                fail_reasons[f"sample failed: {r.failure}"] += 1
            elif m is None:
                not_computed += 1
                nc_reasons["missing from this sample's results"] += 1
            elif m.value is not None:
                values.append(m.value)
            elif m.failed:
                failed += 1
                fail_reasons[m.reason or ""] += 1
            else:
                not_computed += 1
                nc_reasons[m.reason or ""] += 1
        worst = WORST_VALUES.get(_base_name(name))
        attempted = len(values) + failed
        with_worst = None
        if worst is not None and attempted:
            with_worst = (math.fsum(values) + worst * failed) / attempted
        out["metrics"][name] = {
            "protocol": _stats(values),
            "all": {"total": len(items), "ok": len(values), "failed": failed, "not_computed": not_computed,
                    "success_rate": len(values) / attempted if attempted else None,
                    "worst": worst, "mean_failures_as_worst": with_worst},
            "reasons": {"failed": dict(fail_reasons.most_common(max_reasons)),
                        "not_computed": dict(nc_reasons.most_common(max_reasons))},
        }
    return out
