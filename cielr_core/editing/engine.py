"""The one interface both inpainting engines share (diffusers here, ComfyUI's sampler in ``nodes``).

An engine receives a crop already scaled to its working size and returns the inpainted crop of the
same size; cropping, scaling back and compositing stay in ``execute``, so the guarantee about
untouched pixels never depends on an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..defaults import CFG, STEPS


@dataclass(frozen=True)
class SamplerSettings:
    """How an engine samples, for every action of a plan. The diffusers engine reads ``steps`` and
    ``cfg`` (its pipeline brings its own scheduler); the ComfyUI engine reads them all."""

    steps: int = STEPS
    cfg: float = CFG  # the node always passes its own cfg input (default 7.0, as ComfyUI's KSampler)
    sampler: str = "euler"
    scheduler: str = "normal"
    guidance: float = 0.0  # distilled guidance for models that read it; 0 = the family's default
    edit_mode: str = "auto"  # "auto" | "inpaint" | "instruction edit"


@dataclass(frozen=True)
class InpaintRequest:
    """One masked inpaint at working resolution."""

    image: np.ndarray  # H x W x 3 float32 in [0, 1]; H and W are multiples of the engine's ``multiple``
    mask: np.ndarray  # H x W float32, 1 = repaint, 0 = keep
    prompt: str
    negative: str
    seed: int
    denoise: float  # 0..1; 1 = ignore what is under the mask
    instruction: str = ""  # the action as a command, for instruction-edit models ("" = use the prompt)


@runtime_checkable
class InpaintEngine(Protocol):
    multiple: int  # width and height of requests are multiples of this (the VAE's downscale x patch size)
    # engines that drive instruction-edit models set ``instructions = True``: they read
    # ``InpaintRequest.instruction`` instead of the prompt, and reports show it

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        """The repainted crop: H x W x 3 float32 in [0, 1], the request's size."""
        ...
