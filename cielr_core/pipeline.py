"""The whole CIELR method in one readable function:

    labels -> perceive -> scene -> refine (chain of scene updates) -> plan -> execute

Each stage lives in its own package; this module only wires them, times them, and lets a caller
stop early (``until="scene"`` or ``"plan"``) or bring its own plan.

Without an LLM (``llm=None``) the method still runs for a person who brings the labels
(``settings.extra_labels``) and, to edit, the plan: labels are not proposed, the scene is not
refined, and decomposition needs ``plan``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .editing import EditResult, EditSettings, InpaintEngine, execute_plan
from .errors import InputError
from .images import rgb_channels, to_rgb_uint8
from .llm import LLM
from .perception import detect_objects, perceive
from .perception.perceive import Detector, Segmenter
from .plan import Plan, validate_plan
from .progress import NO_PROGRESS, Progress
from .reasoning import Refinement, clean_labels, decompose, propose_labels, refine_scene
from .reasoning.refine import NO_ROUNDS
from .scene import Scene, build_scene
from .scene.model import Box
from .verify import Verifier, VerifySettings

STAGES = ("labels", "perceive", "scene", "refine", "decompose", "edit")

# Called with (stage, "start") before a stage and (stage, "end") after it, also when it raised: lets a
# caller attribute memory or a failure to the stage it happened in.
StageHook = Callable[[str, str], None]


@dataclass
class PipelineSettings:
    extra_labels: str = ""  # object names to detect besides the LLM's proposals
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    max_rounds: int = 3
    edit: EditSettings = field(default_factory=EditSettings)
    # Each action is looked at again by the detector when asked, and always when there are candidates
    # to choose between or retries to trigger; ``judge`` adds the LLM's look when it accepts images.
    verify: bool = False
    judge: bool = False
    verification: VerifySettings = field(default_factory=VerifySettings)

    @property
    def verifies(self) -> bool:
        return self.verify or self.judge or self.edit.candidates > 1 or self.edit.retries > 0

    def verifier(self, detector: Detector | None, segmenter: Segmenter | None, llm: LLM | None) -> Verifier | None:
        if not self.verifies:
            return None  # the default costs nothing extra
        # the second look uses the thresholds of the first
        looks = dataclasses.replace(self.verification, box_threshold=self.box_threshold,
                                    text_threshold=self.text_threshold)
        return Verifier(detector, segmenter, llm if self.judge else None, looks)


@dataclass
class PipelineResult:
    labels: list[str] = field(default_factory=list)
    scene: Scene | None = None  # after refinement (relations computed)
    refinement: Refinement | None = None
    plan: Plan | None = None
    edit: EditResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


@contextmanager
def _timed(result: PipelineResult, stage: str, hook: StageHook | None = None) -> Iterator[None]:
    if hook is not None:
        hook(stage, "start")
    start = time.perf_counter()
    try:
        yield
    finally:
        result.seconds[stage] = result.seconds.get(stage, 0.0) + time.perf_counter() - start
        if hook is not None:
            hook(stage, "end")


def detector_callable(image: np.ndarray, detector: Detector, segmenter: Segmenter, settings: PipelineSettings):
    """The seam refinement uses to look again: detect these labels, optionally inside a box."""

    def detect(labels: list[str], within: Box | None) -> Scene:
        return detect_objects(image, detector, segmenter, labels, within=within,
                              box_threshold=settings.box_threshold, text_threshold=settings.text_threshold)

    return detect


def _perceive_and_refine(rgb: np.ndarray, instruction: str, detector: Detector, segmenter: Segmenter,
                         llm: LLM | None, settings: PipelineSettings, depth: np.ndarray | None, progress: Progress,
                         on_stage: StageHook | None, result: PipelineResult) -> Refinement:
    """labels -> perceive -> scene -> refine, timed into ``result``."""
    with _timed(result, "labels", on_stage):
        if llm is None:
            result.labels = clean_labels(settings.extra_labels)
            if not result.labels:
                raise InputError("without an LLM the labels must be given: name the objects to look for, "
                                 "e.g. 'tv, speaker, lamp'")
        else:
            result.labels = propose_labels(llm, instruction, rgb, extra_labels=settings.extra_labels)
    with _timed(result, "perceive", on_stage):
        raw = perceive(rgb, detector, segmenter, result.labels, box_threshold=settings.box_threshold,
                       text_threshold=settings.text_threshold, progress=progress)
    with _timed(result, "scene", on_stage):
        scene = build_scene(raw, depth=depth)
    with _timed(result, "refine", on_stage):
        if llm is None:
            return Refinement(scene, [], NO_ROUNDS, 0)
        return refine_scene(scene, instruction, llm, detector_callable(rgb, detector, segmenter, settings),
                            max_rounds=settings.max_rounds, depth=depth, progress=progress)


def run_pipeline(image: np.ndarray, instruction: str, *, detector: Detector, segmenter: Segmenter, llm: LLM | None,
                 engine: InpaintEngine | None = None, settings: PipelineSettings = PipelineSettings(),
                 depth: np.ndarray | None = None, plan: Plan | None = None, until: str = "edit",
                 progress: Progress = NO_PROGRESS, on_stage: StageHook | None = None,
                 scene: Scene | None = None) -> PipelineResult:
    """Run CIELR on one photo. ``plan`` skips decomposition (a plan typed by a person, or an oracle);
    ``until`` stops after "scene", "plan" or "edit" (the default, which needs an ``engine``).

    ``llm=None`` runs without a language model: the labels are ``settings.extra_labels`` alone, the
    scene is not refined, and past the scene a ``plan`` is required. ``on_stage`` (optional) is told
    when each stage starts and ends. ``scene`` (optional): a scene built earlier (by ``until="scene"``,
    or read from JSON and edited by hand) for this image: labels, perception and refinement are
    skipped."""
    if until not in ("scene", "plan", "edit"):
        raise ValueError(f"until must be 'scene', 'plan' or 'edit', got {until!r}")
    if until == "edit" and engine is None:
        raise ValueError("editing needs an inpainting engine")
    if llm is None and until != "scene" and plan is None:
        raise InputError("without an LLM there is nothing to write the plan: give a plan (JSON, see "
                         "'python -m cielr_core edit --help') or connect an LLM")
    image = rgb_channels(image)  # once, where the image enters: alpha dropped, grey repeated, values kept
    rgb = to_rgb_uint8(image)
    result = PipelineResult()
    if scene is not None:
        if (scene.width, scene.height) != (rgb.shape[1], rgb.shape[0]):
            raise InputError(f"the scene was built for a {scene.width}x{scene.height} image but the image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}; use the image the scene was made from")
        with _timed(result, "scene", on_stage):
            built = scene if scene.relations is not None else build_scene(scene, depth=depth)
        result.labels = list(dict.fromkeys(o.label for o in built.objects))
        result.refinement = Refinement(built, [], NO_ROUNDS, 0)
    else:
        result.refinement = _perceive_and_refine(rgb, instruction, detector, segmenter, llm, settings, depth,
                                                 progress, on_stage, result)
    result.scene = result.refinement.scene
    if until == "scene":
        return result
    with _timed(result, "decompose", on_stage):
        if plan is not None:
            result.plan = validate_plan(plan, result.scene)
        else:
            assert llm is not None  # checked above
            result.plan = decompose(result.scene, instruction, llm, progress=progress)
    if until == "plan":
        return result
    with _timed(result, "edit", on_stage):
        result.edit = execute_plan(image, result.scene, result.plan, engine, settings.edit, progress=progress,
                                   verifier=settings.verifier(detector, segmenter, llm))
    return result
