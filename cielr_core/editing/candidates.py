"""Best of N: sample an action several times, keep the candidate with the best verdict, retry when
every candidate failed.

Candidate k (0-based) of round r samples with seed ``action seed + r * candidates + k``, so round 0
with one candidate is exactly today's single sample, and no two attempts share a seed. A retry
round changes what most likely made the action fail: it grows the mask (remove, replace, add),
raises the denoise (recolor) and strengthens the prompt. Attempts are bounded by
``candidates * (1 + retries)``.

Selection rule: a passing verdict beats a failing one, then the higher score wins, then the earlier
attempt. Retries run only when every candidate of the rounds so far failed. Without a verifier
(or when it cannot look, e.g. it has no detector) nothing can choose, so exactly one candidate is
sampled and the report says "not verified".

Every candidate is sampled from the same running image; only the kept one is written into it, and
only through ``stitch.composite``, so pixels outside the kept grown mask keep their exact values.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ..plan import Action
from ..progress import Progress
from ..scene.model import Scene
from ..settings import SAMPLING_SEED_MAX
from ..verdict import ActionVerifier, Verdict
from . import stitch

RECOLOR_DENOISE_STEP = 0.15  # per retry round
GROW_STEP = 8  # pixels, at least, per retry round
STRONGER = ("clearly visible", "sharp, detailed, well lit")
NOT_VERIFIED = "not verified (no detector connected)"
SELECTION_RULE = ("each action is sampled with seeds s + k (k = 0 .. candidates - 1, s = the action's seed); the "
                  "kept candidate is the one whose verdict passes, then the one with the higher verdict score, "
                  "then the earlier seed; when every candidate of a round fails, a retry round samples again "
                  "with a grown mask (recolor: higher denoise) and a firmer prompt")


@dataclass
class Attempt:
    """One candidate sample of an action and its verdict."""

    number: int  # 1-based, in sampling order
    round: int  # 0 = the first round, r = retry r
    seed: int
    prompt: str
    denoise: float
    grow: int
    verdict: Verdict
    seconds: float = 0.0
    kept: bool = False

    def line(self) -> str:
        mark = "kept" if self.kept else "    "
        change = f" retry {self.round}: grow {self.grow}, denoise {self.denoise:.2f}," if self.round else ""
        return (f"  {mark} candidate {self.number} (seed {self.seed}){change} {self.verdict.short()}: "
                f"{self.verdict.evidence}")

    def to_dict(self) -> dict:
        return {"number": self.number, "round": self.round, "seed": self.seed, "prompt": self.prompt,
                "denoise": round(self.denoise, 4), "grow": self.grow, "kept": self.kept,
                "seconds": round(self.seconds, 3), "verdict": self.verdict.to_dict()}


@dataclass(frozen=True)
class Variant:
    """What one round samples with."""

    prompt: str
    denoise: float
    grow: int


def variant(op: str, prompt: str, denoise: float, grow: int, round_: int) -> Variant:
    """Round 0 as prepared; each retry round grows the mask, raises a recolor's denoise, and adds
    words that ask for the result more firmly."""
    if round_ == 0:
        return Variant(prompt, denoise, grow)
    if op == "recolor":
        return Variant(_stronger(prompt, round_), min(1.0, denoise + RECOLOR_DENOISE_STEP * round_), grow)
    bigger = grow + round_ * max(GROW_STEP, grow)
    return Variant(prompt if op == "remove" else _stronger(prompt, round_), denoise, bigger)


def _stronger(prompt: str, round_: int) -> str:
    return ", ".join([prompt, *STRONGER[:round_]])


def better(a: Attempt, b: Attempt | None) -> bool:
    """Is ``a`` better than the best so far ``b``? Ties keep the earlier attempt."""
    return b is None or a.verdict.rank() > b.verdict.rank()


def choose(running: np.ndarray, action: Action, scene: Scene, sample, verifier: ActionVerifier | None,
           candidates: int, retries: int, seed: int, prompt: str, denoise: float, grow: int,
           progress: Progress) -> tuple[object, list[Attempt]]:
    """Sample and judge candidates; returns the kept sample and every attempt (the kept one marked).

    ``sample(variant, seed)`` returns a ``Sample`` (the stitched window and its grown mask) without
    touching ``running``.
    """
    if verifier is None:
        candidates, retries = 1, 0
    attempts: list[Attempt] = []
    best, best_sample = None, None
    for r in range(retries + 1):
        v = variant(action.op, prompt, denoise, grow, r)
        for k in range(candidates):
            progress.check()  # cancel between candidates
            start = time.perf_counter()
            s = (seed + r * candidates + k) & SAMPLING_SEED_MAX
            sampled = sample(v, s)
            if verifier is None:
                verdict = Verdict.not_verified(NOT_VERIFIED)
            else:
                after = running.copy()
                after[sampled.window.slices] = sampled.stitched
                edited = np.zeros(running.shape[:2], dtype=bool)
                edited[sampled.window.slices] = sampled.grown
                verdict = verifier(running, after, action, scene, edited)
            attempt = Attempt(len(attempts) + 1, r, s, v.prompt, v.denoise, v.grow, verdict,
                              time.perf_counter() - start)
            attempts.append(attempt)
            if better(attempt, best):
                best, best_sample = attempt, sampled
            if not verdict.verified:  # nothing can rank the candidates: more samples only cost time
                break
        if best.verdict.passed or not best.verdict.verified:
            break
    best.kept = True
    return best_sample, attempts


def grown_settings(settings, v: Variant):
    """The edit settings with a round's grow (the rest unchanged)."""
    return settings if settings.grow == v.grow else dataclasses.replace(settings, grow=v.grow)


@dataclass
class Sample:
    window: stitch.Window
    grown: np.ndarray  # bool, the window's size
    stitched: np.ndarray  # the window's new pixels (composited: only grown pixels differ)
    working: tuple[int, int]
