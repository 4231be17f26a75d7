"""A plan handed to another inpainting chain: per action, the region, prompts and denoise.

The regions are the ones ``execute_plan`` edits, made by the same functions (``prepare`` decides
masks, prompts and denoise; ``feathered_mask`` grows and feathers), so a user's own sampler graph
driven by them edits exactly where CIELR Inpaint Actions would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..plan import Plan
from ..scene.model import Scene
from .execute import EditSettings, feathered_mask, prepare


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
