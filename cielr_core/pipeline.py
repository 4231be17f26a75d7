"""The whole CIELR method in readable stages:

    labels -> perceive -> scene -> refine (chain of scene updates) -> plan -> execute

Each stage lives in its own package; this module only wires them and times them. The three stages a
caller sees are ``scene_stage`` (labels, perception, the scene and its refinement), ``plan_stage``
(decomposition, or a plan brought by the caller) and ``edit_stage`` (inpainting); ``run_pipeline``
runs them in order and can stop early (``until="scene"`` or ``"plan"``). The command line and the
benchmark run them whole and time them with ``StageTimer``. The ComfyUI nodes split them into one
node per step and call the same pieces: Refine Scene looks again through ``detector_callable``,
Inpaint Actions runs ``edit_stage`` with ``PipelineSettings.verifier`` deciding when to verify, and
Verify Edit runs ``verify.verify_plan``.

Without an LLM (``llm=None``) the method still runs for a person who brings the labels
(``settings.extra_labels``) and, to edit, the plan: labels are not proposed, the scene is not
refined, and decomposition needs ``plan``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from . import settings as S
from .editing import EditResult, EditSettings, InpaintEngine, PreparedAction, execute_plan
from .errors import InputError
from .images import rgb_channels, to_rgb_uint8
from .labels import MAX_LABEL_CHARS, clean_labels
from .llm import LLM
from .perception import detect_objects, perceive
from .perception.perceive import DetectorLike, SegmenterLike
from .plan import Plan, validate_plan
from .progress import NO_PROGRESS, Progress
from .reasoning import Refinement, decompose, propose_labels, refine_scene
from .reasoning.refine import NO_ROUNDS
from .scene import Scene, build_scene, check_same_size
from .scene.model import Box
from .verify import Verifier, VerifySettings

# Called with (stage, "start") before a stage and (stage, "end") after it, also when it raised: lets a
# caller attribute memory or a failure to the stage it happened in.
StageHook = Callable[[str, str], None]
R = TypeVar("R")


class StageTimer:
    """The stage timer every caller shares (pipeline, command line, benchmark).

    ``with timer.stage("edit"): ...`` (or ``timer.run("edit", fn)``) adds the stage's wall time to
    ``seconds[stage]`` (a stage that runs again adds up), also when it raises; ``current`` is the
    stage running now, ``last`` the last one started (where a failure happened), ``elapsed`` the time
    of the stage that ended last. Each hook is told ``(stage, "start")`` and ``(stage, "end")``.
    """

    def __init__(self, *hooks: StageHook | None):
        self.hooks = [h for h in hooks if h is not None]
        self.seconds: dict[str, float] = {}
        self.current: str | None = None
        self.last: str | None = None
        self.elapsed = 0.0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.current = self.last = name
        for hook in self.hooks:
            hook(name, "start")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + self.elapsed
            self.current = None
            for hook in self.hooks:
                hook(name, "end")

    def run(self, name: str, fn: Callable[[], R]) -> R:
        with self.stage(name):
            return fn()

    def text(self) -> str:
        """'labels 1.2 s, perceive 3.4 s, ...' in the order the stages ran."""
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())


@dataclass
class PipelineSettings:
    """How the stages run; ranges, defaults and help of each field in ``cielr_core.settings``."""

    extra_labels: str = S.EXTRA_LABELS.default  # object names to detect besides the LLM's proposals
    box_threshold: float = S.BOX_THRESHOLD.default
    text_threshold: float = S.TEXT_THRESHOLD.default
    max_rounds: int = S.MAX_ROUNDS.default
    edit: EditSettings = field(default_factory=EditSettings)
    # Each action is looked at again by the detector when asked, and always when there are candidates
    # to choose between or retries to trigger; ``judge`` adds the LLM's look when it accepts images.
    verify: bool = False
    judge: bool = False
    verification: VerifySettings = field(default_factory=VerifySettings)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> PipelineSettings:
        """The settings ``values`` names (by setting name, as the schema and the nodes' inputs name
        them; other names are ignored), defaults for the rest; ``edit`` from the same values."""
        return dataclasses.replace(S.record(cls, values), edit=EditSettings.of(values))

    def problems(self) -> list[str]:
        return S.problems(self, FIELDS) + self.edit.problems()

    @property
    def verifies(self) -> bool:
        """The one rule of when an edit is verified: when asked (verify, or judge), and always when
        there are candidates to choose between or retries to trigger."""
        return self.verify or self.judge or self.edit.candidates > 1 or self.edit.retries > 0

    def verifier(self, detector: DetectorLike | None, segmenter: SegmenterLike | None,
                 llm: LLM | None) -> Verifier | None:
        if not self.verifies:
            return None  # the default costs nothing extra
        # the second look uses the thresholds of the first
        looks = dataclasses.replace(self.verification, box_threshold=self.box_threshold,
                                    text_threshold=self.text_threshold)
        return Verifier(detector, segmenter, llm if self.judge else None, looks)


FIELDS = (S.BOX_THRESHOLD, S.TEXT_THRESHOLD, S.MAX_ROUNDS)


@dataclass
class PipelineResult:
    labels: list[str] = field(default_factory=list)
    scene: Scene | None = None  # after refinement (relations computed)
    refinement: Refinement | None = None
    plan: Plan | None = None
    edit: EditResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


def detector_callable(image: np.ndarray, detector: DetectorLike, segmenter: SegmenterLike | None,
                      settings: PipelineSettings, progress: Progress = NO_PROGRESS):
    """The seam refinement uses to look again: detect these labels, optionally inside a box (without
    a segmenter new objects get box-shaped masks). ``progress`` is only asked whether to cancel."""
    cancel_only = Progress(on_check=progress.on_check)

    def detect(labels: list[str], within: Box | None) -> Scene:
        return detect_objects(image, detector, segmenter, labels, within=within,
                              box_threshold=settings.box_threshold, text_threshold=settings.text_threshold,
                              progress=cancel_only)

    return detect


@dataclass
class SceneStage:
    labels: list[str]
    refinement: Refinement

    @property
    def scene(self) -> Scene:
        return self.refinement.scene


def scene_stage(image: np.ndarray, instruction: str, *, detector: DetectorLike | None,
                segmenter: SegmenterLike | None, llm: LLM | None, settings: PipelineSettings | None = None,
                depth: np.ndarray | None = None, scene: Scene | None = None, progress: Progress = NO_PROGRESS,
                timer: StageTimer | None = None) -> SceneStage:
    """labels -> perceive -> scene -> refine. ``scene`` (optional): a scene built earlier for this
    image (by this stage, or read from JSON and edited by hand): labels, perception and refinement are
    skipped, and relations are computed if it has none."""
    timer = timer or StageTimer()
    settings = settings or PipelineSettings()
    rgb = to_rgb_uint8(image)
    if scene is not None:
        check_same_size(scene, rgb)
        with timer.stage("scene"):
            built = scene if scene.relations is not None else build_scene(scene, depth=depth)
        labels = list(dict.fromkeys(o.label for o in built.objects))
        return SceneStage(labels, Refinement(built, [], NO_ROUNDS, 0))
    with timer.stage("labels"):
        if llm is None:
            labels = clean_labels(settings.extra_labels, strip_decoration=True, max_chars=MAX_LABEL_CHARS)
            if not labels:
                raise InputError("without an LLM the labels must be given: name the objects to look for, "
                                 "e.g. 'tv, speaker, lamp'")
        else:
            labels = propose_labels(llm, instruction, rgb, extra_labels=settings.extra_labels)
    with timer.stage("perceive"):
        raw = perceive(rgb, detector, segmenter, labels, box_threshold=settings.box_threshold,
                       text_threshold=settings.text_threshold, progress=progress)
    with timer.stage("scene"):
        built = build_scene(raw, depth=depth)
    with timer.stage("refine"):
        if llm is None:
            return SceneStage(labels, Refinement(built, [], NO_ROUNDS, 0))
        detect = detector_callable(rgb, detector, segmenter, settings)
        refined = refine_scene(built, instruction, llm, detect, max_rounds=settings.max_rounds, depth=depth,
                               progress=progress)
        return SceneStage(labels, refined)


def _need_plan_source(llm: LLM | None, plan: Plan | None) -> None:
    if llm is None and plan is None:
        raise InputError("without an LLM there is nothing to write the plan: give a plan (JSON, see "
                         "'python -m cielr_core edit --help') or connect an LLM")


def plan_stage(scene: Scene, instruction: str, llm: LLM | None, *, plan: Plan | None = None,
               progress: Progress = NO_PROGRESS, timer: StageTimer | None = None) -> Plan:
    """The LLM's plan for the instruction, or ``plan`` (typed by a person, or an oracle) checked
    against the scene."""
    _need_plan_source(llm, plan)
    with (timer or StageTimer()).stage("decompose"):
        if plan is not None:
            return validate_plan(plan, scene)
        return decompose(scene, instruction, llm, progress=progress)


def edit_stage(image: np.ndarray, scene: Scene, plan: Plan, engine: InpaintEngine, *,
               settings: PipelineSettings | None = None, detector: DetectorLike | None = None,
               segmenter: SegmenterLike | None = None, llm: LLM | None = None, progress: Progress = NO_PROGRESS,
               timer: StageTimer | None = None, prepared: list[PreparedAction] | None = None) -> EditResult:
    """Every action of the plan inpainted in order (verified when the settings ask for it).
    ``prepared``: ``editing.prepare(scene, plan, settings.edit)`` when the caller has it already."""
    settings = settings or PipelineSettings()
    image = rgb_channels(image)  # alpha dropped, grey repeated; the values (and their exactness) kept
    with (timer or StageTimer()).stage("edit"):
        return execute_plan(image, scene, plan, engine, settings.edit, progress=progress,
                            verifier=settings.verifier(detector, segmenter, llm), prepared=prepared)


def run_pipeline(image: np.ndarray, instruction: str, *, detector: DetectorLike, segmenter: SegmenterLike,
                 llm: LLM | None,
                 engine: InpaintEngine | None = None, settings: PipelineSettings = PipelineSettings(),
                 depth: np.ndarray | None = None, plan: Plan | None = None, until: str = "edit",
                 progress: Progress = NO_PROGRESS, timer: StageTimer | None = None,
                 scene: Scene | None = None) -> PipelineResult:
    """Run CIELR on one photo: ``scene_stage``, ``plan_stage`` and ``edit_stage`` in order. ``plan``
    skips decomposition (a plan typed by a person, or an oracle); ``until`` stops after "scene", "plan"
    or "edit" (the default, which needs an ``engine``).

    ``llm=None`` runs without a language model: the labels are ``settings.extra_labels`` alone, the
    scene is not refined, and past the scene a ``plan`` is required. ``timer`` (optional) times the
    stages (its hooks are told when each starts and ends; its seconds survive a stage that raises).
    ``scene`` (optional): a scene built earlier (by ``until="scene"``, or read from JSON and edited
    by hand) for this image: labels, perception and refinement are skipped."""
    if until not in ("scene", "plan", "edit"):
        raise ValueError(f"until must be 'scene', 'plan' or 'edit', got {until!r}")
    if until == "edit" and engine is None:
        raise ValueError("editing needs an inpainting engine")
    if until != "scene":
        _need_plan_source(llm, plan)  # before minutes of perception
    image = rgb_channels(image)  # once, where the image enters: alpha dropped, grey repeated, values kept
    timer = timer or StageTimer()
    result = PipelineResult(seconds=timer.seconds)
    found = scene_stage(image, instruction, detector=detector, segmenter=segmenter, llm=llm,
                        settings=settings, depth=depth, scene=scene, progress=progress, timer=timer)
    result.labels, result.refinement, result.scene = found.labels, found.refinement, found.scene
    if until == "scene":
        return result
    result.plan = plan_stage(result.scene, instruction, llm, plan=plan, progress=progress, timer=timer)
    if until == "plan":
        return result
    assert engine is not None  # checked above
    result.edit = edit_stage(image, result.scene, result.plan, engine, settings=settings, detector=detector,
                             segmenter=segmenter, llm=llm, progress=progress, timer=timer)
    return result
