"""Run a plan: per action, in order, on the running result: mask, crop, inpaint, stitch.

Everything that can be wrong with the inputs is checked before the first sample, so a bad plan never
costs a minute of sampling: the image against the scene in ``check_image``, the settings and the plan
in ``prepare`` (which needs no image, so a mask can be made from the scene and plan alone).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import settings as S
from ..errors import InputError
from ..images import MAX_SIDE
from ..plan import Action, Plan, validate_plan
from ..progress import NO_PROGRESS, Progress
from ..scene.masks import mask_box
from ..scene.model import Scene, check_same_size
from ..verdict import ActionVerifier, Verdict
from . import regions, stitch
from .candidates import Attempt, Sample, Variant, choose, grown_settings
from .engine import InpaintEngine, InpaintRequest
from .instructions import instruction

OP_DENOISE = {"remove": 1.0, "replace": 1.0, "add": 1.0, "recolor": S.RECOLOR_DENOISE.default}


@dataclass(frozen=True)
class EditSettings:
    """How a plan is executed; ranges, defaults and help in ``cielr_core.settings``."""

    seed: int = S.SAMPLING_SEED.default
    grow: int = S.GROW.default
    feather: int = S.FEATHER.default
    context: int = S.CONTEXT.default
    working_size: int = S.WORKING_SIZE.default  # 0 = auto: the engine's own (its model family's) size
    background_prompt: str = S.BACKGROUND_PROMPT.default  # remove without a prompt of its own
    negative: str = S.NEGATIVE.default
    recolor_denoise: float = S.RECOLOR_DENOISE.default
    candidates: int = S.CANDIDATES.default  # samples per action; the best verdict is kept (needs a verifier)
    retries: int = S.RETRIES.default  # rounds with a grown mask / higher denoise / firmer prompt when all failed

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> EditSettings:
        """The settings ``values`` names (by setting name, as the nodes' inputs and the schema name
        them; other names are ignored), defaults for the rest."""
        return S.record(cls, values)

    def problems(self) -> list[str]:
        return S.problems(self, FIELDS)

    def for_engine(self, engine: object) -> EditSettings:
        """``working_size`` 0 (auto) made the engine's own size (512 for an engine that names none)."""
        if self.working_size != S.WORKING_SIZE.auto:
            return self
        return dataclasses.replace(self, working_size=int(getattr(engine, "working_size", 0) or AUTO_SIZE))


FIELDS = (S.SAMPLING_SEED, S.GROW, S.FEATHER, S.CONTEXT, S.WORKING_SIZE, S.RECOLOR_DENOISE, S.CANDIDATES, S.RETRIES)
AUTO_SIZE = 512  # working size of an engine that does not say its own (SD1.5-class models)


@dataclass
class PreparedAction:
    """An action with everything decided before sampling."""

    index: int  # 1-based, as plan messages count
    action: Action
    mask: np.ndarray  # bool H x W, ungrown
    prompt: str
    negative: str
    seed: int
    denoise: float
    instruction: str = ""  # the action as a command, for instruction-edit models

    @property
    def empty(self) -> bool:
        return not self.mask.any()


@dataclass
class ActionReport:
    index: int
    op: str
    prompt: str
    seed: int
    denoise: float
    skipped: bool = False
    reason: str = ""
    window: stitch.Window | None = None
    working: tuple[int, int] | None = None
    changed_pixels: int = 0  # pixels that differ from the image before this action
    seconds: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)  # every candidate sampled, the kept one marked

    @property
    def verdict(self) -> Verdict:
        kept = [a for a in self.attempts if a.kept]
        if self.skipped or not kept:
            return Verdict.not_verified(f"not verified: {self.reason or 'not executed'}")
        return kept[0].verdict

    @property
    def kept(self) -> Attempt | None:
        return next((a for a in self.attempts if a.kept), None)

    def line(self) -> str:
        head = f"action {self.index} ({self.op})"
        if self.skipped:
            return f"{head}: skipped, {self.reason}"
        w = self.window
        text = (f"{head}: '{self.prompt}', seed {self.seed}, denoise {self.denoise:.2f}, window "
                f"{w.width}x{w.height} at ({w.x0}, {w.y0}) sampled at {self.working[0]}x{self.working[1]}, "
                f"{self.changed_pixels} pixels changed, {self.seconds:.1f} s")
        kept = self.kept
        if kept is None:
            return text
        choice = (f"candidate {kept.number} of {len(self.attempts)} kept" if len(self.attempts) > 1
                  else "one candidate")
        return f"{text}; {choice}, {kept.verdict.short()}"

    def to_dict(self) -> dict:
        kept = self.kept
        return {"index": self.index, "op": self.op, "skipped": self.skipped, "reason": self.reason,
                "kept": None if kept is None else kept.number, "verdict": self.verdict.to_dict(),
                "candidates": [a.to_dict() for a in self.attempts]}


@dataclass
class EditResult:
    image: np.ndarray  # same shape and dtype as the input
    mask: np.ndarray  # float32 H x W: union of the grown masks; every changed pixel lies inside
    previews: list[np.ndarray] = field(default_factory=list)  # the running result after each action
    reports: list[ActionReport] = field(default_factory=list)

    @property
    def report(self) -> str:
        return "\n".join(r.line() for r in self.reports)

    def verdict_table(self) -> str:
        """One row per action (kept candidate, its seed, verdict), then every candidate's evidence."""
        rows = ["action | op | candidates | kept | seed | verdict", "--- | --- | --- | --- | --- | ---"]
        details = []
        for r in self.reports:
            kept = r.kept
            rows.append(f"{r.index} | {r.op} | {len(r.attempts)} | {kept.number if kept else '-'} | "
                        f"{kept.seed if kept else '-'} | {r.verdict.short()}")
            details.append(f"action {r.index} ({r.op}):" + ("" if r.attempts else f" {r.verdict.evidence}"))
            details += [a.line() for a in r.attempts]
        return "\n".join(rows + [""] + details)


def action_seed(seed: int, index: int) -> int:
    """Action n (1-based) samples with seed + n - 1, so a one-action plan reproduces a plain sampler."""
    return (int(seed) + index - 1) & S.SAMPLING_SEED_MAX


def _prompts(action: Action, scene: Scene, settings: EditSettings) -> tuple[str, str]:
    if action.op != "remove":
        return action.prompt, settings.negative
    labels = ", ".join(dict.fromkeys(scene.get(t).label for t in action.targets))
    # what was removed must not come back: its labels join the negative prompt
    negative = ", ".join(p for p in (settings.negative, labels) if p)
    return action.prompt.strip() or settings.background_prompt, negative


def _denoise(action: Action, settings: EditSettings) -> float:
    if action.strength is not None:
        return float(action.strength)
    return settings.recolor_denoise if action.op == "recolor" else OP_DENOISE[action.op]


def check_image(image: np.ndarray, scene: Scene) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an H x W x 3 RGB image, got shape {tuple(image.shape)}; convert it to RGB "
                         "first (drop an alpha channel, repeat a grey one), so the edited image has the same "
                         "channels as the photo the scene was built from")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise InputError(f"expected uint8 or float pixels, got {image.dtype}")
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        raise InputError(f"image is {w}x{h}; the largest side supported is {MAX_SIDE}")
    check_same_size(scene, image)


def prepare(scene: Scene, plan: Plan, settings: EditSettings) -> list[PreparedAction]:
    """Validate the settings and the plan, and decide masks, prompts, seeds and denoise, before any
    sampling. The image is checked apart, by ``check_image``."""
    S.check_all(settings, FIELDS, "edit settings")
    validate_plan(plan, scene)
    prepared = []
    for n, action in enumerate(plan.actions, 1):
        prompt, negative = _prompts(action, scene, settings)
        background = "" if settings.background_prompt == S.BACKGROUND_PROMPT.default else settings.background_prompt
        prepared.append(PreparedAction(n, action, regions.action_mask(action, scene), prompt, negative,
                                       action_seed(settings.seed, n), _denoise(action, settings),
                                       instruction(action, scene, background)))
    return prepared


def action_region(mask: np.ndarray, settings: EditSettings) -> tuple[stitch.Window, np.ndarray, np.ndarray]:
    """The crop window, the grown mask inside it and the feather weight, for a non-empty mask."""
    h, w = mask.shape
    x0, y0, x1, y1 = (int(v) for v in mask_box(mask))
    # context >= 1 keeps a ring of untouched pixels around the grown mask inside the window
    window = stitch.crop_window((x0, y0, x1, y1), settings.grow + max(settings.context, 1), w, h)
    grown = regions.grow(mask[window.slices], settings.grow)
    weight = regions.feather(grown, settings.feather, window.borders(w, h))
    return window, grown, weight


def grown_mask(mask: np.ndarray, settings: EditSettings) -> np.ndarray:
    """Full-size grown mask of one action (what the node's MASK output is the union of)."""
    out = np.zeros(mask.shape, dtype=bool)
    if mask.any():
        window, grown, _ = action_region(mask, settings)
        out[window.slices] = grown
    return out


def feathered_mask(mask: np.ndarray, settings: EditSettings) -> np.ndarray:
    """Full-size blend weight of one action, float32: 0 outside the grown mask, 1 at its core."""
    out = np.zeros(mask.shape, dtype=np.float32)
    if mask.any():
        window, _, weight = action_region(mask, settings)
        out[window.slices] = weight
    return out


def sample_window(running: np.ndarray, item: PreparedAction, engine: InpaintEngine, settings: EditSettings,
                  variant: Variant, seed: int) -> Sample:
    """One sample of an action on the running image, composited into its window; ``running`` is
    not touched."""
    settings = grown_settings(settings, variant)
    window, grown, weight = action_region(item.mask, settings)
    crop = running[window.slices]
    multiple = int(getattr(engine, "multiple", 8) or 8)
    work_w, work_h = stitch.working_size(window.width, window.height, settings.working_size, multiple)
    request = InpaintRequest(image=stitch.resize(stitch.to_float(crop), work_w, work_h),
                             mask=stitch.resize_mask(grown, work_w, work_h), prompt=variant.prompt,
                             negative=item.negative, seed=seed, denoise=variant.denoise,
                             instruction=item.instruction)
    generated = np.asarray(engine.inpaint(request), dtype=np.float32)
    if generated.shape != (work_h, work_w, 3):
        raise RuntimeError(f"the inpainting engine returned shape {generated.shape}, expected {(work_h, work_w, 3)}")
    back = stitch.resize(generated, window.width, window.height)
    return Sample(window, grown, stitch.composite(crop, back, grown, weight), (work_w, work_h))


def run_action(running: np.ndarray, item: PreparedAction, engine: InpaintEngine, settings: EditSettings,
               scene: Scene | None = None, verifier: ActionVerifier | None = None,
               progress: Progress = NO_PROGRESS) -> tuple[np.ndarray, np.ndarray, ActionReport]:
    """One action on the running image (updated in place and returned), its full-size grown mask, a
    report. With a verifier, ``settings.candidates`` samples (and retry rounds) compete; the kept
    one is written."""
    report = ActionReport(item.index, item.action.op, item.prompt, item.seed, item.denoise)
    start = time.perf_counter()

    def sample(variant: Variant, seed: int) -> Sample:
        return sample_window(running, item, engine, settings, variant, seed)

    kept, report.attempts = choose(running, item.action, scene, sample, verifier if scene is not None else None,
                                   settings.candidates, settings.retries, item.seed, item.prompt, item.denoise,
                                   settings.grow, progress)
    window = kept.window
    crop = running[window.slices]
    report.changed_pixels = int(np.count_nonzero((kept.stitched != crop).any(axis=-1)))
    running[window.slices] = kept.stitched  # only the window is rewritten, and in it only grown pixels differ
    full = np.zeros(running.shape[:2], dtype=bool)
    full[window.slices] = kept.grown
    chosen = report.kept
    report.seed, report.prompt, report.denoise = chosen.seed, chosen.prompt, chosen.denoise
    if getattr(engine, "instructions", False):  # an edit model was given the action as a command
        report.prompt = item.instruction
    report.window, report.working = window, kept.working
    report.seconds = time.perf_counter() - start
    return running, full, report


def execute_plan(image: np.ndarray, scene: Scene, plan: Plan, engine: InpaintEngine,
                 settings: EditSettings = EditSettings(), progress: Progress = NO_PROGRESS,
                 verifier: ActionVerifier | None = None,
                 prepared: list[PreparedAction] | None = None) -> EditResult:
    """Run every action of ``plan`` in order on ``image`` (H x W x 3, uint8 or float in [0, 1]).

    The input is never modified. Every pixel outside the union mask of the result keeps its exact
    value. Actions whose mask is empty are skipped and reported, not failed. ``verifier`` (e.g.
    ``cielr_core.verify.Verifier``) judges each action; with ``settings.candidates`` > 1 it chooses
    the kept sample, with ``settings.retries`` it triggers retry rounds. Without it every action is
    sampled once and reported "not verified". ``prepared``: ``prepare(scene, plan, settings)`` when the
    caller has it already (e.g. to size a progress bar).
    """
    check_image(image, scene)
    if prepared is None:
        prepared = prepare(scene, plan, settings)
    settings = settings.for_engine(engine)
    running = np.array(image, copy=True)
    union = np.zeros(image.shape[:2], dtype=bool)
    result = EditResult(image=running, mask=union.astype(np.float32))
    progress.start(len(prepared))
    for item in prepared:
        progress.check()
        if item.empty:
            reason = ("the placement region lies outside the image" if item.action.op == "add"
                      else "the target masks are empty")
            report = ActionReport(item.index, item.action.op, item.prompt, item.seed, item.denoise,
                                  skipped=True, reason=reason)
        else:
            running, grown, report = run_action(running, item, engine, settings, scene, verifier, progress)
            union |= grown
        result.reports.append(report)
        result.previews.append(running.copy())
        progress.advance()
    result.image, result.mask = running, union.astype(np.float32)
    return result
