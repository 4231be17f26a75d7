"""The ComfyUI inpainting engine: the user's MODEL, CLIP and VAE through ComfyUI's sampling functions.

Uses only ComfyUI's function-level API (``comfy.sample``, the CLIP/VAE objects, ``latent_preview``),
never core node classes, whose signatures change between versions. The family is read from the
loaded model (``cielr_core.editing.families``). Any image model works through a noise mask on the
latent; real inpainting models (SD1.5/SDXL 9-channel UNets, Flux Fill) also get the masked image and
the mask as concat conditioning, as InpaintModelConditioning gives them; instruction-edit models get
the crop as a reference latent, as ReferenceLatent / TextEncodeQwenImageEdit give it; distilled-guidance
models (Flux) get their guidance value, as FluxGuidance sets it.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from cielr_core.editing.engine import InpaintRequest, SamplerSettings
from cielr_core.editing.families import EditMode, Family, choose_mode, family_of
from cielr_core.errors import InputError


def latent_shape(model: Any) -> tuple[int, int]:
    """(channels, spatial dimensions) of the latents the MODEL denoises."""
    fmt = model.get_model_object("latent_format")
    return int(fmt.latent_channels), int(getattr(fmt, "latent_dimensions", 2))


def config_name(model: Any) -> str:
    """The class ComfyUI detected from the weights, e.g. SD15, SDXL, Flux, FluxInpaint, QwenImage."""
    base = getattr(model, "model", model)
    return type(getattr(base, "model_config", base)).__name__


def model_family(model: Any) -> Family:
    channels, dims = latent_shape(model)
    return family_of(config_name(model), channels, dims)


def check_model_vae(model: Any, vae: Any) -> None:
    """A clear error when the VAE does not make the latents the MODEL expects, or the MODEL edits no stills."""
    channels, dims = latent_shape(model)
    vae_channels, vae_dims = int(vae.latent_channels), int(getattr(vae, "latent_dim", 2))
    name = config_name(model)
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


def concat_takes_mask(model: Any) -> bool:
    """True for real inpainting models: their concat conditioning carries the mask (SD1.5/SDXL
    9-channel UNets, Flux Fill, ...). ``model_config.inpaint_model()`` is only ``in_channels > 4``,
    true for every 16-channel family, so the model's own ``concat_cond`` is asked instead: two
    masks must give two different concat inputs."""
    base = getattr(model, "model", None)
    keys = tuple(getattr(base, "concat_keys", ()))
    if "mask" in keys or "mask_inverted" in keys:
        return True
    if keys or not hasattr(base, "concat_cond"):
        return False  # a concat of images only (instruct-pix2pix): no mask input
    channels, dims = latent_shape(model)
    noise = torch.zeros((1, channels) + (1,) * (dims - 2) + (8, 8))
    outs = []
    for value in (0.0, 1.0):
        mask = torch.full((1, 1, 64, 64), value)
        try:
            outs.append(base.concat_cond(noise=noise, latent_image=noise, concat_latent_image=noise,
                                         concat_mask=mask, denoise_mask=mask, device=torch.device("cpu")))
        except Exception:  # noqa: BLE001  (a model whose concat needs inputs we do not have takes no mask)
            return False
    return all(isinstance(o, torch.Tensor) for o in outs) and not torch.equal(outs[0], outs[1])


def reads_guidance(model: Any, family: Family) -> bool:
    """Distilled-guidance models (Flux.1 dev, Flux.2 dev...) take the guidance scale as an input."""
    params = getattr(getattr(getattr(model, "model", None), "diffusion_model", None), "params", None)
    embed = getattr(params, "guidance_embed", None)
    return bool(embed) if embed is not None else family.guidance is not None


def patch_size(model: Any) -> int:
    size = getattr(getattr(getattr(model, "model", None), "diffusion_model", None), "patch_size", 1)
    if isinstance(size, (tuple, list)):
        size = size[-1]
    return max(1, int(size or 1))


def encode_text(clip: Any, text: str, images: list | None = None) -> list:
    """CONDITIONING for ``text`` with the user's CLIP, as CLIPTextEncode makes it; ``images`` go to
    text encoders that also read pictures (Qwen2.5-VL), as TextEncodeQwenImageEdit passes them."""
    if clip is None:
        raise InputError("CIELR Inpaint Actions: the CLIP input is empty; this checkpoint has no text encoder. "
                         "Connect a CLIP from a Load CLIP node.")
    tokens = None
    if images:
        try:
            tokens = clip.tokenize(text, images=images)
        except TypeError:  # a tokenizer without an image input: text only
            tokens = None
    if tokens is None:
        tokens = clip.tokenize(text)
    if hasattr(clip, "encode_from_tokens_scheduled"):
        return clip.encode_from_tokens_scheduled(tokens)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)  # older ComfyUI
    return [[cond, {"pooled_output": pooled}]]


TEXT_CACHE_SIZE = 64
_TEXT_CACHE: OrderedDict[tuple[int, str], tuple[weakref.ref, list]] = OrderedDict()


def cached_text(clip: Any, text: str) -> list:
    """``encode_text`` kept across runs for the same CLIP object, as ComfyUI keeps a CLIPTextEncode
    node's output while its inputs stay the same: a re-run with a new seed encodes nothing. Holds
    no reference to the CLIP itself (a LoRA-patched clone is another object, so another key)."""
    key = (id(clip), text)
    hit = _TEXT_CACHE.get(key)
    if hit is not None and hit[0]() is clip:
        _TEXT_CACHE.move_to_end(key)
        return hit[1]
    cond = encode_text(clip, text)
    try:
        _TEXT_CACHE[key] = (weakref.ref(clip), cond)
    except TypeError:  # an object without weak references: no cache
        return cond
    while len(_TEXT_CACHE) > TEXT_CACHE_SIZE:
        _TEXT_CACHE.popitem(last=False)
    return cond


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
    """``InpaintEngine`` over the user's MODEL, CLIP and VAE, with the conditioning its family needs."""

    def __init__(self, model: Any, clip: Any, vae: Any, settings: SamplerSettings, preview: StepPreview | None = None):
        check_model_vae(model, vae)
        self.model, self.clip, self.vae = model, clip, vae
        self.settings = settings
        self.preview = preview
        self.family = model_family(model)
        self.mode: EditMode = choose_mode(self.family, concat_takes_mask(model), settings.edit_mode)
        self.instructions = self.mode.reference  # execute shows (and we sample with) the instruction
        self.guidance = self._guidance()
        ratio = vae.spacial_compression_encode() if hasattr(vae, "spacial_compression_encode") else 8
        # sides the VAE can encode and the model can cut into whole patches
        self.multiple = int(np.lcm(8, int(ratio))) * patch_size(model)

    def _guidance(self) -> float | None:
        if not reads_guidance(self.model, self.family):
            return None
        if self.settings.guidance > 0:
            return float(self.settings.guidance)
        return self.family.guidance if self.family.guidance is not None else 3.5

    def describe(self) -> str:
        name = config_name(self.model)
        parts = [f"model {name} ({self.mode.describe()})", f"family {self.family.label}"]
        if self.guidance is not None:
            parts.append(f"guidance {self.guidance:g}")
        elif self.settings.guidance > 0:
            parts.append("guidance ignored (this family has no guidance input)")
        if self.family.edit == "optional" and not self.mode.reference:
            parts.append("for an instruction-edit checkpoint of this family (Flux Kontext, Qwen-Image-Edit) set "
                         "edit_mode to 'instruction edit'")
        s = self.settings
        return "; ".join(parts) + f"; {s.steps} steps, cfg {s.cfg}, {s.sampler_name}/{s.scheduler}"

    def _cond(self, text: str, images: list | None = None) -> list:
        # image-dependent conditioning (a vision encoder reading the crop) is never reused
        cond = encode_text(self.clip, text, images) if images else cached_text(self.clip, text)
        if self.guidance is not None:
            cond = with_values(cond, {"guidance": self.guidance})
        return cond

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
        latent = self.vae.encode(pixels)
        if self.mode.reference:
            images = [pixels] if self.family.vision_prompt else None
            positive = self._cond(request.instruction or request.prompt, images)
            negative = self._cond(request.negative, images)
            # the crop itself is the reference, as ComfyUI's ReferenceLatent node attaches it
            ref = {"reference_latents": [latent]}
            positive, negative = with_values(positive, ref), with_values(negative, ref)
        else:
            positive, negative = self._cond(request.prompt), self._cond(request.negative)
        if self.mode.inpaint:
            positive, negative = self._inpaint_conditioning(pixels, mask, positive, negative)
        noise = comfy.sample.prepare_noise(latent, int(request.seed))
        callback = self.preview.callback if self.preview is not None else None
        samples = comfy.sample.sample(self.model, noise, s.steps, s.cfg, s.sampler_name, s.scheduler, positive,
                                      negative, latent, denoise=float(request.denoise), noise_mask=mask, callback=callback,
                                      disable_pbar=True, seed=int(request.seed))
        if self.preview is not None:
            self.preview.finish_action(s.steps)
        image = self.vae.decode(samples)
        while image.ndim > 4:  # some VAEs return [B, T, H, W, C]
            image = image[:, 0]
        return image[0, :, :, :3].detach().to("cpu", torch.float32).clamp(0, 1).numpy()
