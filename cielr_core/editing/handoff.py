"""A plan handed to another inpainting chain: per action, the region, prompts and denoise, as masks
or as SEGS.

The regions are the ones ``execute_plan`` edits, made by the same functions (``prepare`` decides
masks, prompts and denoise; ``action_region`` crops, grows and feathers), so a user's own sampler
graph driven by them edits exactly where CIELR Inpaint Actions would.

SEGS are the type Impact Pack's detailers read: ``((height, width), [SEG, ...])`` with SEG a
namedtuple ``(cropped_image, cropped_mask, confidence, crop_region, bbox, label,
control_net_wrapper)``. ``cropped_mask`` covers the whole ``crop_region``; ``crop_region`` and
``bbox`` are ``[x0, y0, x1, y1]`` pixel ints, end-exclusive. Impact's readers go by field name (its
own SEG class is imported twice in one ComfyUI process, so they cannot check the class), so a
namedtuple of the same fields is read as theirs and Impact is never imported.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from ..plan import Plan
from ..scene.masks import mask_box
from ..scene.model import Scene
from .execute import EditSettings, action_region, feathered_mask, prepare

SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                         "control_net_wrapper"], defaults=[None])


@dataclass
class ActionRegion:
    index: int  # 1-based, as plan messages count
    op: str
    weight: np.ndarray  # float32 H x W: 0 outside the grown mask, rising to 1 inside (the blend weight)
    prompt: str
    negative: str
    denoise: float
    seed: int

    @property
    def empty(self) -> bool:
        return not self.weight.any()


def plan_regions(scene: Scene, plan: Plan, settings: EditSettings = EditSettings()) -> list[ActionRegion]:
    """One region per action, in plan order; the plan is validated against the scene first."""
    return [ActionRegion(item.index, item.action.op, feathered_mask(item.mask, settings), item.prompt,
                         item.negative, item.denoise, item.seed)
            for item in prepare(scene, plan, settings)]


@dataclass
class PlanSegs:
    """A plan as SEGS: one SEG per action with a region, in plan order."""

    height: int
    width: int
    segs: list = field(default_factory=list)  # [SEG, ...]
    indices: list[int] = field(default_factory=list)  # the action (1-based) of each SEG
    skipped: list[int] = field(default_factory=list)  # actions whose region is empty: no SEG

    def as_segs(self) -> tuple:
        """``((height, width), [SEG, ...])``, the SEGS value."""
        return (self.height, self.width), list(self.segs)

    def text(self) -> str:
        lines = [f"action {n}: crop_region {seg.crop_region}, bbox {seg.bbox}, label {seg.label!r}"
                 for n, seg in zip(self.indices, self.segs)]
        lines += [f"action {n}: no SEG (its region is empty)" for n in self.skipped]
        return "\n".join(lines) if lines else "the plan has no actions"


def plan_segs(scene: Scene, plan: Plan, settings: EditSettings = EditSettings(),
              image: np.ndarray | None = None) -> PlanSegs:
    """One SEG per action: its crop window as ``crop_region``, the blend weight inside it as
    ``cropped_mask`` (the same values as ``plan_regions``' weight there), the grown mask's box as
    ``bbox``, the action's prompt as ``label``, confidence 1.0. ``image`` (H x W x 3 float in [0, 1],
    the scene's size) fills ``cropped_image`` as [1, h, w, 3] float32, as Impact's detectors do; without
    it the field is None, as after Impact's MASK to SEGS. An action with an empty region gets no SEG."""
    out = PlanSegs(scene.height, scene.width)
    for item in prepare(scene, plan, settings):
        if item.empty:
            out.skipped.append(item.index)
            continue
        window, grown, weight = action_region(item.mask, settings)
        bx0, by0, bx1, by1 = (int(v) for v in mask_box(grown))
        crop = None
        if image is not None:
            crop = np.ascontiguousarray(image[window.slices], dtype=np.float32)[None].copy()
        out.segs.append(SEG(crop, weight.astype(np.float32, copy=True), 1.0,
                            [window.x0, window.y0, window.x1, window.y1],
                            [window.x0 + bx0, window.y0 + by0, window.x0 + bx1, window.y0 + by1], item.prompt))
        out.indices.append(item.index)
    return out
