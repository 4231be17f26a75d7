"""A user's own SAMPLER, SIGMAS and GUIDER for every action, as SamplerCustomAdvanced takes them.

Each connected piece replaces its part of the built-in sampling, and only that part:

- SAMPLER (KSamplerSelect, SamplerDPMPP_2M_SDE, a sampler pack's node) replaces the sampler_name
  widget;
- SIGMAS (BasicScheduler, KarrasScheduler, ...) replaces steps + scheduler: they are the schedule of a
  full denoise, and an action with a lower denoise (recolor, an action's own strength) samples its
  last ``round(steps x denoise)`` steps, as ComfyUI's SplitSigmasDenoise cuts them;
- GUIDER (CFGGuider, DualCFGGuider, a guidance pack's node) replaces the cfg rule: its ``positive`` and
  ``negative`` are replaced per action by the action's prompts with the conditioning the model family
  needs (inpaint conditioning, reference latent, distilled guidance), everything else it holds (its
  model patches, its cfg, other conditionings) stays; the user's guider itself is never changed.

Without them the built-in path samples exactly as KSampler does; with KSamplerSelect and
BasicScheduler of the same names and CFGGuider of the same cfg, both paths give the same pixels,
because KSampler itself is a CFGGuider over ``sampler_object(name)`` and the scheduler's sigmas.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from cielr_core.errors import InputError

from . import comfy_internals as comfy

NODE = "CIELR Inpaint Actions"


def cut_for_denoise(sigmas: torch.Tensor, denoise: float) -> torch.Tensor:
    """The last ``round(steps x denoise)`` steps of a full schedule (SplitSigmasDenoise's low sigmas)."""
    if denoise > 0.9999:
        return sigmas
    steps = max(int(sigmas.shape[-1]) - 1, 0)
    return sigmas[-(round(steps * denoise) + 1):]


def _conds_with(entries: list, values: dict) -> list:
    """Converted conditioning entries (the dicts a guider keeps) with the family's values added."""
    return [{**entry, **values} for entry in entries]


@dataclass(frozen=True)
class CustomSampling:
    sampler: Any = None
    sigmas: Any = None
    guider: Any = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.sampler, self.sigmas, self.guider))

    def check(self, model: Any, model_name: str) -> None:
        """Clear errors for pieces that are not what their socket says, before the first sample."""
        if self.sampler is not None and not callable(getattr(self.sampler, "sample", None)):
            raise InputError(f"{NODE}: the SAMPLER input is a {type(self.sampler).__name__}, not a sampler; connect "
                             "KSamplerSelect or another node whose output is SAMPLER")
        if self.sigmas is not None:
            s = self.sigmas
            if not isinstance(s, torch.Tensor) or s.ndim != 1:
                raise InputError(f"{NODE}: the SIGMAS input must be a 1-D tensor of noise levels (from BasicScheduler "
                                 f"or another scheduler node), got {type(s).__name__} {tuple(getattr(s, 'shape', ()))}")
            if s.shape[0] < 2:
                raise InputError(f"{NODE}: the SIGMAS hold {s.shape[0]} value(s), so no sampling step; a schedule of "
                                 "n steps has n + 1 values (check the scheduler's steps and denoise)")
            if not bool(torch.isfinite(s).all()):
                raise InputError(f"{NODE}: the SIGMAS contain NaN or infinite values")
        if self.guider is not None:
            g = self.guider
            if not (callable(getattr(g, "sample", None)) and hasattr(g, "model_patcher")
                    and isinstance(getattr(g, "original_conds", None), dict)):
                raise InputError(f"{NODE}: the GUIDER input is a {type(g).__name__}, not a ComfyUI guider; connect "
                                 "CFGGuider, BasicGuider or another node whose output is GUIDER")
            if getattr(g.model_patcher, "model", None) is not getattr(model, "model", None):
                raise InputError(f"{NODE}: the GUIDER was made for another diffusion model "
                                 f"({comfy.config_name(g.model_patcher)}) than the MODEL input ({model_name}); "
                                 "build the guider from the same MODEL (a LoRA-patched copy of it is fine), so the "
                                 "conditioning CIELR makes for that model reaches the one that samples")

    def schedule(self, model: Any, steps: int, sampler_name: str, scheduler: str, denoise: float) -> torch.Tensor:
        """The sigmas one action samples: the connected SIGMAS cut for its denoise, else KSampler's own."""
        if self.sigmas is not None:
            return cut_for_denoise(self.sigmas, denoise)
        return comfy.schedule(model, steps, sampler_name, scheduler, denoise)

    def sampler_for(self, sampler_name: str) -> Any:
        if self.sampler is not None:
            return self.sampler
        return comfy.sampler_object(sampler_name)

    def guider_for(self, model: Any, positive: list, negative: list, cfg: float, values: dict) -> Any:
        """The guider of one action: a copy of the user's with this action's conditioning, else a CFGGuider
        over the node's cfg (what KSampler builds). ``values`` (the family's conditioning) go onto the
        user's other conditionings too, so the model gets the inputs it needs from each."""
        if self.guider is None:
            return comfy.cfg_guider(model, positive, negative, cfg)
        guider = copy.copy(self.guider)
        guider.original_conds = {k: _conds_with(v, values) for k, v in self.guider.original_conds.items()}
        ours = {"positive": positive, "negative": negative}
        for key in ("positive", "negative"):
            if key in guider.original_conds:
                guider.original_conds[key] = comfy.guider_conds(ours[key])
        return guider

    def sample(self, model: Any, noise: torch.Tensor, latent: torch.Tensor, mask: torch.Tensor, settings: Any,
               denoise: float, positive: list, negative: list, values: dict, callback: Any, seed: int) -> torch.Tensor:
        sigmas = self.schedule(model, settings.steps, settings.sampler_name, settings.scheduler, denoise)
        guider = self.guider_for(model, positive, negative, settings.cfg, values)
        return comfy.guided_sample(guider, noise, latent, self.sampler_for(settings.sampler_name), sigmas, mask,
                                   callback, seed)

    def steps(self, settings_steps: int, denoise: float) -> int:
        """Sampling steps of one action (for the progress bar)."""
        if self.sigmas is None:
            return settings_steps
        return max(int(cut_for_denoise(self.sigmas, denoise).shape[-1]) - 1, 0)

    def describe(self) -> str:
        parts = []
        if self.guider is not None:
            parts.append(f"guider {type(self.guider).__name__} (its cfg; positive/negative per action)")
        if self.sampler is not None:
            function = getattr(self.sampler, "sampler_function", None)  # KSamplerSelect's samplers keep it
            parts.append(f"sampler {getattr(function, '__name__', type(self.sampler).__name__)}")
        if self.sigmas is not None:
            parts.append(f"sigmas {int(self.sigmas.shape[-1]) - 1} steps ({float(self.sigmas[0]):.3g} to "
                         f"{float(self.sigmas[-1]):.3g}), cut per action's denoise")
        return "custom sampling: " + ", ".join(parts) if parts else ""
