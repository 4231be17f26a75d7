"""Verification: look at every executed action again and say whether it worked, and why.

``verify_action`` gives the verdict for one action from the image before and after it: the
per-op detector and pixel checks (``checks``), plus an optional vision judge (``judge``). The
verdict passes when every check that could be computed held; its score is the mean of the checks'
scores, mixed with the judge's when it answered. Without a detector nothing is verified, and the
verdict says "not verified", never "passed".

``Verifier`` binds the models, so the editing engine can call it per candidate sample (it is an
``ActionVerifier``); ``verify_plan`` checks a whole plan's result made elsewhere at once (the Verify
Edit node).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..editing.execute import EditSettings, check_image, grown_mask, prepare
from ..editing.stitch import crop_window
from ..errors import InputError
from ..images import to_rgb_uint8
from ..perception.perceive import DetectorLike, SegmenterLike
from ..plan import Action, Plan
from ..progress import NO_PROGRESS, Progress
from ..scene.masks import check_mask, mask_box
from ..scene.model import Scene
from ..verdict import Check, Verdict
from .checks import VerifySettings, check_action, prompt_noun
from .judge import describe_action, judge

NO_DETECTOR = "not verified: no detector connected, so nothing looked at the edit"


def _said(check: Check) -> str:
    return f"{check.name}: {check.detail}"


def combine(checks: list[Check], judge_weight: float) -> Verdict:
    """Pass when every computed check held; score = mean check score, mixed with the judge's."""
    judged = [c for c in checks if c.name == "vision judge" and c.passed is not None]
    counted = [c for c in checks if c.passed is not None and c not in judged]
    if not counted and not judged:
        return Verdict("not verified", None, "; ".join(c.detail for c in checks) or "nothing could be checked",
                       checks)
    score = float(np.mean([c.score for c in counted])) if counted else None
    if judged:
        score = judged[0].score if score is None else (1 - judge_weight) * score + judge_weight * judged[0].score
    failed = [c for c in counted + judged if not c.passed]
    status = "failed" if failed else "passed"
    lead = ("failed: " + "; ".join(_said(c) for c in failed)) if failed else "passed"
    rest = [_said(c) for c in checks if c not in failed]
    return Verdict(status, float(np.clip(score, 0.0, 1.0)), "; ".join([lead, *rest]), checks)


def verify_action(before: np.ndarray, after: np.ndarray, action: Action, scene: Scene, edited: np.ndarray,
                  detector: DetectorLike | None, segmenter: SegmenterLike | None = None, llm=None,
                  settings: VerifySettings = VerifySettings()) -> Verdict:
    """The verdict on one executed action; ``edited`` is the bool mask of pixels it could change."""
    if detector is None:
        return Verdict.not_verified(NO_DETECTOR)
    problems = settings.problems()
    if problems:
        raise InputError("verification settings out of range:\n" + "\n".join(f"  - {p}" for p in problems))
    if before.shape != after.shape:
        raise InputError(f"the images before and after differ in size ({before.shape[1]}x{before.shape[0]} and "
                         f"{after.shape[1]}x{after.shape[0]}); compare an edit with the image it was made from")
    edited = check_mask(edited, scene.height, scene.width)
    if not edited.any():
        return Verdict.not_verified("not verified: the action's region is empty (it was skipped)")
    checks = check_action(before, after, action, scene, edited, detector, segmenter, settings)
    if llm is not None:
        x0, y0, x1, y1 = (int(v) for v in mask_box(edited))
        window = crop_window((x0, y0, x1, y1), settings.context, scene.width, scene.height)
        checks.append(judge(llm, to_rgb_uint8(before), to_rgb_uint8(after), window, action, scene))
    return combine(checks, settings.judge_weight)


@dataclass
class Verifier:
    """An ``ActionVerifier`` over fixed models: ``verifier(before, after, action, scene, edited)``."""

    detector: DetectorLike | None
    segmenter: SegmenterLike | None = None
    llm: object | None = None
    settings: VerifySettings = field(default_factory=VerifySettings)

    def __call__(self, before: np.ndarray, after: np.ndarray, action: Action, scene: Scene,
                 edited: np.ndarray) -> Verdict:
        return verify_action(before, after, action, scene, edited, self.detector, self.segmenter, self.llm,
                             self.settings)


@dataclass
class PlanCheck:
    """What ``verify_plan`` found: per action, the region it could change and its verdict."""

    masks: list[np.ndarray]  # bool H x W: the action's grown mask
    verdicts: list[Verdict]

    def report(self, plan: Plan, scene: Scene) -> dict:
        return plan_report(plan, scene, self.verdicts)

    def preview(self, after: np.ndarray) -> np.ndarray:
        return verdict_preview(after, self.masks, self.verdicts)


def verify_plan(before: np.ndarray, after: np.ndarray, scene: Scene, plan: Plan, verifier: Verifier,
                edit: EditSettings = EditSettings(), progress: Progress = NO_PROGRESS) -> PlanCheck:
    """Every action of a plan executed elsewhere (Inpaint Actions, or a sampler graph of one's own driven by
    Plan To Masks or Action Mask), judged on the final image. Each action's region is its target mask
    grown as ``edit`` grew it. The plan is checked against the scene, and the images against each other,
    before anything is looked at; ``progress`` advances per action and may cancel between them."""
    if before.shape != after.shape:
        raise InputError(f"the images before and after differ in size ({before.shape[1]}x{before.shape[0]} and "
                         f"{after.shape[1]}x{after.shape[0]}); compare an edit with the photo it was made from")
    check_image(before, scene)
    items = prepare(scene, plan, edit)
    progress.start(len(items))
    found = PlanCheck([], [])
    for item in items:
        progress.check()
        found.masks.append(grown_mask(item.mask, edit))
        found.verdicts.append(verifier(before, after, item.action, scene, found.masks[-1]))
        progress.advance()
    return found


def overall(verdicts: list[Verdict]) -> Verdict:
    """All actions together: passed only when every action was verified and passed."""
    if not verdicts or not any(v.verified for v in verdicts):
        return Verdict.not_verified("not verified: " + "; ".join(v.evidence for v in verdicts[:1]))
    failed = [n for n, v in enumerate(verdicts, 1) if not v.passed]
    scores = [v.score for v in verdicts if v.score is not None]
    score = float(np.mean(scores)) if scores else None
    if failed:
        return Verdict("failed", score, "action(s) " + ", ".join(map(str, failed)) + " did not pass")
    return Verdict("passed", score, f"all {len(verdicts)} action(s) passed")


def plan_report(plan: Plan, scene: Scene, verdicts: list[Verdict]) -> dict:
    """The verdicts of a plan as JSON-ready data: the overall verdict, then one entry per action."""
    total = overall(verdicts)
    return {**total.to_dict(),
            "actions": [{"index": n, "op": a.op, "edit": describe_action(a, scene), **v.to_dict()}
                        for n, (a, v) in enumerate(zip(plan.actions, verdicts), 1)]}


FAILED_TINT = (255, 0, 0)
PASSED_TINT = (0, 200, 0)


def verdict_preview(after: np.ndarray, masks: list[np.ndarray], verdicts: list[Verdict]) -> np.ndarray:
    """The image after, RGB uint8, with each failed action's region tinted red and its outline drawn,
    passed regions lightly green, not-verified ones left as they are."""
    out = to_rgb_uint8(after).astype(np.float32)
    for mask, verdict in zip(masks, verdicts):
        if not verdict.verified:
            continue
        colour, alpha = (FAILED_TINT, 0.5) if not verdict.passed else (PASSED_TINT, 0.25)
        m = np.asarray(mask, bool)
        out[m] = (1 - alpha) * out[m] + alpha * np.asarray(colour, np.float32)
        if not verdict.passed:  # an outline, so a small failed region is seen at a glance
            inner = np.zeros_like(m)
            inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
            out[m & ~inner] = FAILED_TINT
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


__all__ = ["NO_DETECTOR", "PlanCheck", "Verifier", "VerifySettings", "combine", "describe_action", "overall",
           "plan_report", "prompt_noun", "verdict_preview", "verify_action", "verify_plan"]
