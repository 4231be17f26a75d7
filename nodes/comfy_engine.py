"""The ComfyUI inpainting engine: the user's MODEL, CLIP and VAE through ComfyUI's sampling functions.

Uses ComfyUI's function-level sampling and the CLIP/VAE objects through ``comfy_internals``, never core
node classes, whose signatures change between versions. The family is read from the
loaded model (``cielr_core.editing.families``). Any image model works through a noise mask on the
latent; real inpainting models (SD1.5/SDXL 9-channel UNets, Flux Fill) also get the masked image and
the mask as concat conditioning, as InpaintModelConditioning gives them; instruction-edit models get
the crop as a reference latent, as ReferenceLatent / TextEncodeQwenImageEdit give it; distilled-guidance
models (Flux) get their guidance value, as FluxGuidance sets it.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

from cielr_core.cache import LRU
from cielr_core.editing.engine import InpaintRequest, SamplerSettings
from cielr_core.editing.families import EditMode, Family, choose_mode, family_of
from cielr_core.errors import InputError

from . import comfy_internals as comfy


def model_family(model: Any) -> Family:
    channels, dims = comfy.latent_shape(model)
    return family_of(comfy.config_name(model), channels, dims)


def check_model_vae(model: Any, vae: Any) -> None:
    """A clear error when the VAE does not make the latents the MODEL expects, or the MODEL edits no stills."""
    channels, dims = comfy.latent_shape(model)
    vae_channels, vae_dims = comfy.vae_latent_shape(vae)
    name = comfy.config_name(model)
    if (vae_channels, vae_dims) != (channels, dims):
        raise InputError(
            f"CIELR Inpaint Actions: the VAE does not belong to this MODEL: the VAE makes latents with "
            f"{vae_channels} channels ({vae_dims}-D) but the MODEL ({name}) denoises latents with {channels} "
            f"channels ({dims}-D). Connect the VAE of the same checkpoint (the VAE output of the Load "
            "Checkpoint node that gives the MODEL), or a VAE made for that model family.")
    family = family_of(name, channels, dims)
    if not family.edits_stills:
        raise InputError(
            f"CIELR Inpaint Actions edits still images; this MODEL is {family.label} ({name}), a {family.kind} "
            "model. Connect an image model: SD1.5, SDXL, SD3, Flux.1 (dev, Fill, Kontext), Flux.2, Qwen-Image(-Edit), "
            "Z-Image, Chroma, HiDream...")


def reads_guidance(model: Any, family: Family) -> bool:
    """Distilled-guidance models (Flux.1 dev, Flux.2 dev...) take the guidance scale as an input."""
    embed = comfy.guidance_embed(model)
    return embed if embed is not None else family.guidance is not None


def encode_text(clip: Any, text: str, images: list | None = None) -> list:
    """CONDITIONING for ``text`` with the user's CLIP (``images`` for encoders that read pictures)."""
    if clip is None:
        raise InputError("CIELR Inpaint Actions: the CLIP input is empty; this checkpoint has no text encoder. "
                         "Connect a CLIP from a Load CLIP node.")
    return comfy.encode_text(clip, text, images)


# Encoded prompts, kept across runs per CLIP object, as ComfyUI keeps a CLIPTextEncode node's output while
# its inputs stay the same: a re-run with a new seed encodes nothing. Keyed by a weak reference, so the
# cache never keeps a CLIP alive, and a LoRA-patched clone (another object) is another key.
_TEXT = LRU(64)


def cached_text(clip: Any, text: str) -> list:
    try:
        key = (weakref.ref(clip), text)
        hash(key)
    except TypeError:  # an object without weak references, or unhashable: no cache
        return encode_text(clip, text)
    return _TEXT.get(key, lambda: encode_text(clip, text))


def with_values(conditioning: list, values: dict) -> list:
    """A copy of ``conditioning`` with extra keys on every entry (what node_helpers does, kept local)."""
    return [[c[0], {**c[1], **values}] for c in conditioning]


class StepPreview:
    """Sampling callback: the native latent preview and one progress bar over every action's steps."""

    def __init__(self, model: Any, total_steps: int):
        self.bar = comfy.progress_bar(max(1, total_steps))
        self.done = 0
        self.total = max(1, total_steps)
        self.previewer = comfy.latent_previewer(model)

    def callback(self, step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        preview = None
        if self.previewer is not None:
            try:
                preview = self.previewer.decode_latent_to_preview_image("JPEG", x0)
            except Exception:  # noqa: BLE001  (newer cores can hand a callback nested latents; no preview then
                self.previewer = None  # rather than a failed edit)
        # ComfyUI's progress hook also raises when the user presses cancel
        self.bar.update_absolute(min(self.total, self.done + step + 1), self.total, preview)

    def finish_action(self, steps: int) -> None:
        self.done = min(self.total, self.done + steps)


class ComfyEngine:
    """``InpaintEngine`` over the user's MODEL, CLIP and VAE, with the conditioning its family needs."""

    def __init__(self, model: Any, clip: Any, vae: Any, settings: SamplerSettings, preview: StepPreview | None = None,
                 custom: Any = None):
        from .custom_sampling import CustomSampling

        check_model_vae(model, vae)
        self.model, self.clip, self.vae = model, clip, vae
        self.settings = settings
        self.custom = custom if custom is not None else CustomSampling()
        self.custom.check(model, comfy.config_name(model))
        self.preview = preview
        self.family = model_family(model)
        self.working_size = self.family.working_size  # what working_size 0 (auto) means for this model
        self.mode: EditMode = choose_mode(self.family, comfy.concat_takes_mask(model), settings.edit_mode)
        self.instructions = self.mode.reference  # execute shows (and we sample with) the instruction
        self.guidance = self._guidance()
        # sides the VAE can encode and the model can cut into whole patches
        self.multiple = int(np.lcm(8, comfy.vae_downscale(vae))) * comfy.patch_size(model)

    def _guidance(self) -> float | None:
        if not reads_guidance(self.model, self.family):
            return None
        if self.settings.guidance > 0:
            return float(self.settings.guidance)
        return self.family.guidance if self.family.guidance is not None else 3.5

    def describe(self) -> str:
        name = comfy.config_name(self.model)
        parts = [f"model {name} ({self.mode.describe()})", f"family {self.family.label}"]
        if self.guidance is not None:
            parts.append(f"guidance {self.guidance:g}")
        elif self.settings.guidance > 0:
            parts.append("guidance ignored (this family has no guidance input)")
        if self.family.edit == "optional" and not self.mode.reference:
            parts.append("for an instruction-edit checkpoint of this family (Flux Kontext, Qwen-Image-Edit) set "
                         "edit_mode to 'instruction edit'")
        s = self.settings
        line = "; ".join(parts) + f"; {s.steps} steps, cfg {s.cfg}, {s.sampler_name}/{s.scheduler}"
        return line + (f"; {self.custom.describe()}" if self.custom.active else "")

    def steps_for(self, denoise: float) -> int:
        """Sampling steps of an action with this denoise (the connected SIGMAS decide, when there are)."""
        return self.custom.steps(self.settings.steps, denoise) if denoise > 0 else 0

    def _cond(self, text: str, images: list | None = None) -> list:
        # image-dependent conditioning (a vision encoder reading the crop) is never reused
        return encode_text(self.clip, text, images) if images else cached_text(self.clip, text)

    def _inpaint_values(self, pixels: torch.Tensor, mask: torch.Tensor) -> dict:
        keep = (1.0 - mask.round())[:, 0, :, :, None]  # [1, H, W, 1]
        masked = (pixels - 0.5) * keep + 0.5  # grey where the model should paint
        return {"concat_latent_image": comfy.vae_encode(self.vae, masked), "concat_mask": mask}

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        comfy.check_interrupted()
        s = self.settings
        if request.denoise <= 0:
            return request.image.astype(np.float32, copy=True)
        pixels = torch.from_numpy(np.ascontiguousarray(request.image, dtype=np.float32))[None]
        mask = torch.from_numpy(np.ascontiguousarray(request.mask, dtype=np.float32))[None, None]
        latent = comfy.vae_encode(self.vae, pixels)
        # what the family needs on every conditioning: distilled guidance, the crop as reference (as
        # ReferenceLatent attaches it), the masked crop and mask (as InpaintModelConditioning gives them)
        values: dict = {} if self.guidance is None else {"guidance": self.guidance}
        if self.mode.reference:
            images = [pixels] if self.family.vision_prompt else None
            positive = self._cond(request.instruction or request.prompt, images)
            negative = self._cond(request.negative, images)
            values["reference_latents"] = [latent]
        else:
            positive, negative = self._cond(request.prompt), self._cond(request.negative)
        if self.mode.inpaint:
            values.update(self._inpaint_values(pixels, mask))
        positive, negative = with_values(positive, values), with_values(negative, values)
        noise = comfy.prepare_noise(latent, int(request.seed))
        callback = self.preview.callback if self.preview is not None else None
        if self.custom.active:
            samples = self.custom.sample(self.model, noise, latent, mask, s, float(request.denoise), positive, negative,
                                         values, callback, int(request.seed))
        else:
            samples = comfy.sample(self.model, noise, s.steps, s.cfg, s.sampler_name, s.scheduler, positive, negative,
                                   latent, float(request.denoise), mask, callback, int(request.seed))
        if self.preview is not None:
            self.preview.finish_action(self.steps_for(float(request.denoise)))
        image = comfy.vae_decode(self.vae, samples)
        return image[0, :, :, :3].detach().to("cpu", torch.float32).clamp(0, 1).numpy()
