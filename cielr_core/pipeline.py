"""The whole CIELR method in one readable function:

    labels -> perceive -> scene -> refine (chain of scene updates) -> plan -> execute

Each stage lives in its own package; this module only wires them, times them, and lets a caller
stop early (``until="scene"`` or ``"plan"``) or bring its own plan.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .editing import EditResult, EditSettings, InpaintEngine, execute_plan
from .images import to_rgb_uint8
from .llm import LLM
from .perception import detect_objects, perceive
from .perception.perceive import Detector, Segmenter
from .plan import Plan, validate_plan
from .progress import NO_PROGRESS, Progress
from .reasoning import Refinement, decompose, propose_labels, refine_scene
from .scene import Scene, build_scene
from .scene.model import Box

STAGES = ("labels", "perceive", "scene", "refine", "decompose", "edit")


@dataclass
class PipelineSettings:
    extra_labels: str = ""  # object names to detect besides the LLM's proposals
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    max_rounds: int = 3
    edit: EditSettings = field(default_factory=EditSettings)


@dataclass
class PipelineResult:
    labels: list[str] = field(default_factory=list)
    scene: Scene | None = None  # after refinement (relations computed)
    refinement: Refinement | None = None
    plan: Plan | None = None
    edit: EditResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


@contextmanager
def _timed(result: PipelineResult, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        result.seconds[stage] = result.seconds.get(stage, 0.0) + time.perf_counter() - start


def detector_callable(image: np.ndarray, detector: Detector, segmenter: Segmenter, settings: PipelineSettings):
    """The seam refinement uses to look again: detect these labels, optionally inside a box."""

    def detect(labels: list[str], within: Box | None) -> Scene:
        return detect_objects(image, detector, segmenter, labels, within=within,
                              box_threshold=settings.box_threshold, text_threshold=settings.text_threshold)

    return detect


def run_pipeline(image: np.ndarray, instruction: str, *, detector: Detector, segmenter: Segmenter, llm: LLM,
                 engine: InpaintEngine | None = None, settings: PipelineSettings = PipelineSettings(),
                 depth: np.ndarray | None = None, plan: Plan | None = None, until: str = "edit",
                 progress: Progress = NO_PROGRESS) -> PipelineResult:
    """Run CIELR on one photo. ``plan`` skips decomposition (a plan typed by a person, or an oracle);
    ``until`` stops after "scene", "plan" or "edit" (the default, which needs an ``engine``)."""
    if until not in ("scene", "plan", "edit"):
        raise ValueError(f"until must be 'scene', 'plan' or 'edit', got {until!r}")
    if until == "edit" and engine is None:
        raise ValueError("editing needs an inpainting engine")
    rgb = to_rgb_uint8(image)
    result = PipelineResult()
    with _timed(result, "labels"):
        result.labels = propose_labels(llm, instruction, rgb, extra_labels=settings.extra_labels)
    with _timed(result, "perceive"):
        raw = perceive(rgb, detector, segmenter, result.labels, box_threshold=settings.box_threshold,
                       text_threshold=settings.text_threshold, progress=progress)
    with _timed(result, "scene"):
        scene = build_scene(raw, depth=depth)
    with _timed(result, "refine"):
        result.refinement = refine_scene(scene, instruction, llm, detector_callable(rgb, detector, segmenter, settings),
                                         max_rounds=settings.max_rounds, depth=depth, progress=progress)
    result.scene = result.refinement.scene
    if until == "scene":
        return result
    with _timed(result, "decompose"):
        result.plan = validate_plan(plan, result.scene) if plan is not None else decompose(
            result.scene, instruction, llm, progress=progress)
    if until == "plan":
        return result
    with _timed(result, "edit"):
        result.edit = execute_plan(image, result.scene, result.plan, engine, settings.edit, progress=progress)
    return result
