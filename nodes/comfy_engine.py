"""The ComfyUI inpainting engine: the user's MODEL, CLIP and VAE through ComfyUI's sampling functions.

Uses only ComfyUI's function-level API (``comfy.sample``, the CLIP/VAE objects, ``latent_preview``),
never core node classes, whose signatures change between versions. Any checkpoint works through a
noise mask on the latent; inpainting checkpoints (9-channel UNet, ``inpaint_model()``) also get the
masked image and the mask as concat conditioning, the way ComfyUI's InpaintModelConditioning does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cielr_core.editing.engine import InpaintRequest
from cielr_core.errors import InputError


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 20
    cfg: float = 7.0
    sampler: str = "euler"
    scheduler: str = "normal"


def latent_shape(model: Any) -> tuple[int, int]:
    """(channels, spatial dimensions) of the latents the MODEL denoises."""
    fmt = model.get_model_object("latent_format")
    return int(fmt.latent_channels), int(getattr(fmt, "latent_dimensions", 2))


def check_model_vae(model: Any, vae: Any) -> None:
    """A clear error when the VAE does not make the latents the MODEL expects."""
    channels, dims = latent_shape(model)
    vae_channels, vae_dims = int(vae.latent_channels), int(getattr(vae, "latent_dim", 2))
    base = getattr(model, "model", model)
    name = type(getattr(base, "model_config", base)).__name__  # e.g. SD15, SDXL, Flux
    if (vae_channels, vae_dims) != (channels, dims):
        raise InputError(
            f"CIELR Inpaint Actions: the VAE does not belong to this MODEL: the VAE makes latents with "
            f"{vae_channels} channels ({vae_dims}-D) but the MODEL ({name}) denoises latents with {channels} "
            f"channels ({dims}-D). Connect the VAE of the same checkpoint (the VAE output of the Load "
            "Checkpoint node that gives the MODEL), or a VAE made for that model family.")
    if dims != 2:
        raise InputError("CIELR Inpaint Actions edits still images; this MODEL works on video latents.")


def is_inpaint_model(model: Any) -> bool:
    """True for inpainting checkpoints (extra UNet input channels for mask and masked image)."""
    base = getattr(model, "model", None)
    config = getattr(base, "model_config", None)
    if config is not None and hasattr(config, "inpaint_model"):
        try:
            if config.inpaint_model():
                return True
        except (KeyError, TypeError):
            pass
    return "masked_image" in tuple(getattr(base, "concat_keys", ()))


def encode_text(clip: Any, text: str) -> list:
    """CONDITIONING for ``text`` with the user's CLIP, as CLIPTextEncode makes it."""
    if clip is None:
        raise InputError("CIELR Inpaint Actions: the CLIP input is empty; this checkpoint has no text encoder. "
                         "Connect a CLIP from a Load CLIP node.")
    tokens = clip.tokenize(text)
    if hasattr(clip, "encode_from_tokens_scheduled"):
        return clip.encode_from_tokens_scheduled(tokens)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)  # older ComfyUI
    return [[cond, {"pooled_output": pooled}]]


def with_values(conditioning: list, values: dict) -> list:
    """A copy of ``conditioning`` with extra keys on every entry (what node_helpers does, kept local)."""
    return [[c[0], {**c[1], **values}] for c in conditioning]


class StepPreview:
    """Sampling callback: the native latent preview and one progress bar over every action's steps."""

    def __init__(self, model: Any, total_steps: int):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(max(1, total_steps))
        self.done = 0
        self.total = max(1, total_steps)
        try:
            import latent_preview

            self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        except Exception:  # noqa: BLE001  (previews are a nicety; sampling must not depend on them
            self.previewer = None

    def callback(self, step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        preview = None
        if self.previewer is not None:
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0)
        # ComfyUI's progress hook also raises when the user presses cancel
        self.bar.update_absolute(min(self.total, self.done + step + 1), self.total, preview)

    def finish_action(self, steps: int) -> None:
        self.done = min(self.total, self.done + steps)


class ComfyEngine:
    """``InpaintEngine`` over the user's MODEL, CLIP and VAE."""

    def __init__(self, model: Any, clip: Any, vae: Any, settings: SamplerSettings, preview: StepPreview | None = None):
        check_model_vae(model, vae)
        self.model, self.clip, self.vae = model, clip, vae
        self.settings = settings
        self.preview = preview
        self.inpaint_model = is_inpaint_model(model)
        ratio = vae.spacial_compression_encode() if hasattr(vae, "spacial_compression_encode") else 8
        self.multiple = int(np.lcm(8, int(ratio)))
        self._conds: dict[str, list] = {}

    def describe(self) -> str:
        base = getattr(self.model, "model", self.model)
        name = type(getattr(base, "model_config", base)).__name__
        how = ("inpainting checkpoint: inpaint conditioning + latent noise mask" if self.inpaint_model
               else "latent noise mask")
        return f"model {name} ({how}); {self.settings.steps} steps, cfg {self.settings.cfg}, " \
               f"{self.settings.sampler}/{self.settings.scheduler}"

    def _cond(self, text: str) -> list:
        if text not in self._conds:
            self._conds[text] = encode_text(self.clip, text)
        return self._conds[text]

    def _inpaint_conditioning(self, pixels: torch.Tensor, mask: torch.Tensor, positive: list,
                              negative: list) -> tuple[list, list]:
        keep = (1.0 - mask.round())[:, 0, :, :, None]  # [1, H, W, 1]
        masked = (pixels - 0.5) * keep + 0.5  # grey where the model should paint
        values = {"concat_latent_image": self.vae.encode(masked), "concat_mask": mask}
        return with_values(positive, values), with_values(negative, values)

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        import comfy.model_management
        import comfy.sample

        comfy.model_management.throw_exception_if_processing_interrupted()
        s = self.settings
        if request.denoise <= 0:
            return request.image.astype(np.float32, copy=True)
        pixels = torch.from_numpy(np.ascontiguousarray(request.image, dtype=np.float32))[None]
        mask = torch.from_numpy(np.ascontiguousarray(request.mask, dtype=np.float32))[None, None]
        positive, negative = self._cond(request.prompt), self._cond(request.negative)
        if self.inpaint_model:
            positive, negative = self._inpaint_conditioning(pixels, mask, positive, negative)
        latent = self.vae.encode(pixels)
        noise = comfy.sample.prepare_noise(latent, int(request.seed))
        callback = self.preview.callback if self.preview is not None else None
        samples = comfy.sample.sample(self.model, noise, s.steps, s.cfg, s.sampler, s.scheduler, positive, negative,
                                      latent, denoise=float(request.denoise), noise_mask=mask, callback=callback,
                                      disable_pbar=True, seed=int(request.seed))
        if self.preview is not None:
            self.preview.finish_action(s.steps)
        image = self.vae.decode(samples)
        while image.ndim > 4:  # some VAEs return [B, T, H, W, C]
            image = image[:, 0]
        return image[0, :, :, :3].detach().to("cpu", torch.float32).clamp(0, 1).numpy()
