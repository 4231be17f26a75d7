"""The verdict on one executed action: did the edit do what the action asked?

Shared vocabulary: ``verify`` computes verdicts, ``editing`` uses them to choose between candidate
samples through the ``ActionVerifier`` seam (so editing never imports perception), and the nodes,
the command line and the benchmark print them.

Three states, never confused: *passed*, *failed*, and *not verified* (nothing could look at the
edit, e.g. no detector). A not-verified edit is never reported as passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from .plan import Action
from .scene.model import Scene

Status = Literal["passed", "failed", "not verified"]


@dataclass
class Check:
    """One piece of evidence: a named test, whether it held (None: could not be computed), a score."""

    name: str
    passed: bool | None
    score: float  # 0..1, how strongly the evidence says the edit worked
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "score": round(float(self.score), 4),
                "detail": self.detail}


@dataclass
class Verdict:
    status: Status
    score: float | None  # 0..1 (None when not verified)
    evidence: str  # in words, what was seen
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def verified(self) -> bool:
        return self.status != "not verified"

    @staticmethod
    def not_verified(reason: str) -> Verdict:
        return Verdict("not verified", None, reason)

    def rank(self) -> tuple[int, float]:
        """Sort key, larger is better: passing first, then by score; not verified last."""
        return (1 if self.passed else 0, -1.0 if self.score is None else float(self.score))

    def short(self) -> str:
        return self.status if self.score is None else f"{self.status} ({self.score:.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "passed": self.passed,
                "score": None if self.score is None else round(float(self.score), 4),
                "evidence": self.evidence, "checks": [c.to_dict() for c in self.checks]}


class ActionVerifier(Protocol):
    """Looks at one executed action. ``edited`` is the full-size bool mask of the pixels the action
    was allowed to change (its grown mask)."""

    def __call__(self, before: np.ndarray, after: np.ndarray, action: Action, scene: Scene,
                 edited: np.ndarray) -> Verdict: ...
