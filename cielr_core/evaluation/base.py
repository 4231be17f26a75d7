"""The result type every metric returns, and what a metric says when its model is missing.

Every metric comes back as a ``Metric``: a value, or no value and the reason. A metric whose model
weights are absent (LPIPS, CLIP) or whose model is not given (IDCS) is *not computed*; one that
raised is *failed*. Neither is ever a fake or silent zero, and ``summarise`` counts them apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializationInfo, model_serializer, model_validator

OK = "ok"
NOT_COMPUTED = "not computed"
FAILED = "failed"


def json_number(v: float | None) -> float | str | None:
    """A float for JSON: infinities and NaN become the strings "inf", "-inf", "nan" (read back by float())."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


class Metric(BaseModel):
    """One metric for one sample: a value, or None and the reason there is none.

    ``failed`` tells a metric that raised (counted as a failure) from one that was not computed
    because its model is absent (counted apart, never as a zero). ``detail`` is free text kept
    for the report (IDCS keeps the description and the scorer's reason there).

    In JSON it is ``{"status", "value"[, "reason"][, "detail"]}`` with a non-finite value as a
    string; ``model_validate`` reads that form back.
    """

    model_config = ConfigDict(frozen=True)

    value: float | None = None
    reason: str | None = None
    failed: bool = False
    detail: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_stored(cls, data: Any) -> Any:
        if isinstance(data, dict) and "status" in data:
            value = data.get("value")
            return {"value": value, "reason": data.get("reason"), "failed": data["status"] == FAILED,
                    "detail": data.get("detail")}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        if self.value is None and not self.reason:
            raise ValueError("a metric without a value needs a reason")
        if self.value is not None and self.failed:
            raise ValueError("a failed metric has no value")
        return self

    @model_serializer(mode="plain")
    def _stored(self, info: SerializationInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status,
                               "value": json_number(self.value) if info.mode_is_json() else self.value}
        if self.reason:
            out["reason"] = self.reason
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def ok(cls, value: float, detail: str | None = None) -> Metric:
        return cls(value=float(value), detail=detail)

    @classmethod
    def not_computed(cls, reason: str) -> Metric:
        return cls(reason=reason)

    @classmethod
    def failure(cls, reason: str) -> Metric:
        return cls(reason=reason, failed=True)

    @property
    def status(self) -> str:
        if self.value is not None:
            return OK
        return FAILED if self.failed else NOT_COMPUTED


@dataclass(frozen=True)
class Unavailable:
    """A model that could not be had, and why; metrics that need it report "not computed"."""

    reason: str


def model_metric(model: Any, missing: str, what: str, compute: Callable[[Any], float]) -> Metric:
    """``compute(model)`` as a Metric: not computed without a model (``missing`` says why) or with an
    ``Unavailable`` one; failed when it raises (a model error fails this metric only)."""
    if model is None:
        return Metric.not_computed(missing)
    if isinstance(model, Unavailable):
        return Metric.not_computed(model.reason)
    try:
        return Metric.ok(compute(model))
    except Exception as e:  # noqa: BLE001
        return Metric.failure(f"{what} failed: {type(e).__name__}: {e}")
