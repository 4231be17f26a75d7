"""The one interface both inpainting engines share (diffusers here, ComfyUI's sampler in ``nodes``).

An engine receives a crop already scaled to its working size and returns the inpainted crop of the
same size; cropping, scaling back and compositing stay in ``execute``, so the guarantee about
untouched pixels never depends on an engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .. import settings as S


@dataclass(frozen=True)
class SamplerSettings:
    """How an engine samples, for every action of a plan. The diffusers engine reads ``steps`` and
    ``cfg`` (its pipeline brings its own scheduler); the ComfyUI engine reads them all. Ranges,
    defaults and help in ``cielr_core.settings``."""

    steps: int = S.STEPS.default
    cfg: float = S.CFG.default
    sampler_name: str = "euler"  # ComfyUI's sampler and scheduler names (the node lists them)
    scheduler: str = "normal"
    guidance: float = S.GUIDANCE.default  # distilled guidance for models that read it; 0 = the family's default
    edit_mode: str = S.EDIT_MODE.default

    def __post_init__(self):
        S.check_all(self, FIELDS, "sampler settings")

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> SamplerSettings:
        """The settings ``values`` names (by setting name, as the nodes' inputs name them; other names
        are ignored), defaults for the rest."""
        return S.record(cls, values)


FIELDS = (S.STEPS, S.CFG, S.GUIDANCE, S.EDIT_MODE)


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
    # engines may say ``working_size``: the side their model was trained at, used when the edit
    # settings leave it on auto (0); 512 otherwise
    # engines that drive instruction-edit models set ``instructions = True``: they read
    # ``InpaintRequest.instruction`` instead of the prompt, and reports show it

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        """The repainted crop: H x W x 3 float32 in [0, 1], the request's size."""
        ...
