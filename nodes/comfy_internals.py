"""Every use of ComfyUI outside its documented ``comfy_api``, in one module.

ComfyUI promises nothing about these names between versions, so the pack reaches them only here, one
small wrapper per internal, named after what it does; every other module calls these wrappers (a
static test keeps them out of ``comfy``, ``folder_paths``, ``latent_preview``, ``node_helpers`` and
``comfy_extras``). Where versions differ the wrapper detects the feature (an attribute, a keyword),
never a version number. Each wrapper imports what it uses when it is called, so importing this module
costs nothing outside a running ComfyUI.

Sections: model folders, sampler lists, devices and memory, progress and cancel, sampling (KSampler's and
a user's SAMPLER / SIGMAS / GUIDER) and latent previews, what a loaded MODEL / CLIP / VAE is, text generation
by a CLIP (newer cores).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- model folders (folder_paths)

def models_dir() -> str:
    """ComfyUI's models folder."""
    import folder_paths

    return folder_paths.models_dir


def add_model_folder(key: str, path: str) -> None:
    """Register ``path`` for ``key`` after the folders ComfyUI (and extra_model_paths.yaml) already has."""
    import folder_paths

    folder_paths.add_model_folder_path(key, path)


def model_folder_paths(key: str) -> list[str] | None:
    """The folders registered for ``key``, or None when none is."""
    import folder_paths

    try:
        return list(folder_paths.get_folder_paths(key))
    except KeyError:
        return None


def comfy_available() -> bool:
    """Is this running inside ComfyUI (or with its folders importable)?"""
    try:
        import folder_paths  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- sampler lists (comfy.samplers)

def sampler_names() -> list[str]:
    """The sampler names KSampler offers, read when ComfyUI asks (packs may add samplers)."""
    import comfy.samplers

    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    import comfy.samplers

    return list(comfy.samplers.KSampler.SCHEDULERS)


# --------------------------------------------------------------------------- devices and memory

def torch_device() -> torch.device:
    """The device ComfyUI runs models on (the GPU when there is one)."""
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def offload_device() -> torch.device:
    """Where ComfyUI puts a model that gives way."""
    import comfy.model_management

    return comfy.model_management.unet_offload_device()


def load_onto_device(patcher: Any) -> None:
    """Ask ComfyUI's memory manager to bring the patcher's model onto its load device (freeing others)."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([patcher])


def model_patcher(module: torch.nn.Module, load_device: torch.device, offload_device: torch.device) -> Any:
    """A ModelPatcher: ComfyUI moves ``module`` off the GPU (or frees it) when another model needs the room."""
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(module, load_device, offload_device)


def external_patcher(size: int, loaded: Any, release: Any, name: str, load_device: torch.device,
                     offload_device: torch.device) -> Any:
    """A ModelPatcher for memory that is not a torch module (a llama.cpp model) of ``size`` bytes:
    ``loaded()`` says whether it is in memory, ``release()`` frees it and says whether it was. Loading it
    makes ComfyUI free that much room first; when ComfyUI unloads it, it is released, to be opened again
    by its next use."""
    import comfy.model_patcher

    class ExternalPatcher(comfy.model_patcher.ModelPatcher):
        def loaded_size(self):
            return self.size if loaded() else 0

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            return 0  # nothing to move: the next use opens it on its device

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            return self.size if release() else 0

        def detach(self, unpatch_all=True):
            # unpatch_all=False: ComfyUI registers the model again for its next use (load_models_gpu
            # detaches a model it already holds); releasing it then would lose its state (a KV cache)
            if unpatch_all and release():
                log.info("freed %s for ComfyUI (loaded again when next asked)", name)
            return super().detach(unpatch_all)

    return ExternalPatcher(torch.nn.Module(), load_device, offload_device, size=size)


# --------------------------------------------------------------------------- progress and cancel

def progress_bar(total: int) -> Any:
    """The node's progress bar: ``.update_absolute(done, total, preview)``; the update also raises when
    the user pressed cancel."""
    import comfy.utils

    return comfy.utils.ProgressBar(total)


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed cancel."""
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()


# --------------------------------------------------------------------------- sampling and previews

def prepare_noise(latent: torch.Tensor, seed: int) -> torch.Tensor:
    """The noise KSampler starts from for ``seed`` (the same numbers, so a one-action plan matches it)."""
    import comfy.sample

    return comfy.sample.prepare_noise(latent, seed)


def sample(model: Any, noise: torch.Tensor, steps: int, cfg: float, sampler_name: str, scheduler: str,
           positive: list, negative: list, latent: torch.Tensor, denoise: float, noise_mask: torch.Tensor,
           callback: Any, seed: int) -> torch.Tensor:
    """KSampler's sampling: the denoised latent; ``noise_mask`` keeps the latent where it is 0."""
    import comfy.sample

    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, noise_mask=noise_mask, callback=callback, disable_pbar=True,
                               seed=seed)


def schedule(model: Any, steps: int, sampler_name: str, scheduler: str, denoise: float) -> torch.Tensor:
    """The sigmas KSampler samples for these settings (its denoise cut included)."""
    import comfy.samplers

    return comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                   scheduler=scheduler, denoise=denoise, model_options=model.model_options).sigmas


def sampler_object(sampler_name: str) -> Any:
    """The SAMPLER KSamplerSelect gives for ``sampler_name``."""
    import comfy.samplers

    return comfy.samplers.sampler_object(sampler_name)


def cfg_guider(model: Any, positive: list, negative: list, cfg: float) -> Any:
    """The GUIDER KSampler builds: classifier-free guidance at ``cfg`` over the two conditionings."""
    import comfy.samplers

    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider


def guider_conds(conditioning: list) -> list:
    """CONDITIONING in the form a guider keeps it (``original_conds`` entries)."""
    import comfy.sampler_helpers

    return comfy.sampler_helpers.convert_cond(conditioning)


def guided_sample(guider: Any, noise: torch.Tensor, latent: torch.Tensor, sampler: Any, sigmas: torch.Tensor,
                  noise_mask: torch.Tensor, callback: Any, seed: int) -> torch.Tensor:
    """SamplerCustomAdvanced's sampling: the denoised latent on ComfyUI's intermediate device."""
    import comfy.model_management

    samples = guider.sample(noise, latent, sampler, sigmas, denoise_mask=noise_mask, callback=callback,
                            disable_pbar=True, seed=seed)
    return samples.to(comfy.model_management.intermediate_device())


def latent_previewer(model: Any) -> Any | None:
    """ComfyUI's latent preview decoder for the MODEL (``decode_latent_to_preview_image("JPEG", x0)``), or
    None when previews are off or cannot be made."""
    try:
        import latent_preview

        return latent_preview.get_previewer(model.load_device, model.model.latent_format)
    except Exception:  # noqa: BLE001  (previews are a nicety; sampling must not depend on them)
        return None


# --------------------------------------------------------------------------- what a loaded MODEL is

def latent_shape(model: Any) -> tuple[int, int]:
    """(channels, spatial dimensions) of the latents the MODEL denoises."""
    fmt = model.get_model_object("latent_format")
    return int(fmt.latent_channels), int(getattr(fmt, "latent_dimensions", 2))


def config_name(model: Any) -> str:
    """The class ComfyUI detected from the weights, e.g. SD15, SDXL, Flux, FluxInpaint, QwenImage."""
    base = getattr(model, "model", model)
    return type(getattr(base, "model_config", base)).__name__


def concat_takes_mask(model: Any) -> bool:
    """True for real inpainting models: their concat conditioning carries the mask (SD1.5/SDXL 9-channel
    UNets, Flux Fill, ...). ``model_config.inpaint_model()`` is only ``in_channels > 4``, true for every
    16-channel family, so the model's own ``concat_cond`` is asked instead: two masks must give two
    different concat inputs."""
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


def guidance_embed(model: Any) -> bool | None:
    """Does the diffusion model take a distilled guidance input (Flux.1 dev, Flux.2 dev)? None: it does not say."""
    params = getattr(getattr(getattr(model, "model", None), "diffusion_model", None), "params", None)
    embed = getattr(params, "guidance_embed", None)
    return None if embed is None else bool(embed)


def patch_size(model: Any) -> int:
    """The side of the latent patches the diffusion model cuts (1 for UNets)."""
    size = getattr(getattr(getattr(model, "model", None), "diffusion_model", None), "patch_size", 1)
    if isinstance(size, (tuple, list)):
        size = size[-1]
    return max(1, int(size or 1))


# --------------------------------------------------------------------------- what a loaded CLIP and VAE are

def encode_text(clip: Any, text: str, images: list | None = None) -> list:
    """CONDITIONING for ``text``, as CLIPTextEncode makes it; ``images`` go to text encoders that also read
    pictures (Qwen2.5-VL), as TextEncodeQwenImageEdit passes them."""
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


def vae_latent_shape(vae: Any) -> tuple[int, int]:
    """(channels, spatial dimensions) of the latents the VAE makes."""
    return int(vae.latent_channels), int(getattr(vae, "latent_dim", 2))


def vae_downscale(vae: Any) -> int:
    """How many pixels one latent cell covers, per side."""
    return int(vae.spacial_compression_encode()) if hasattr(vae, "spacial_compression_encode") else 8


def vae_encode(vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """IMAGE [1, H, W, 3] -> latent."""
    return vae.encode(pixels)


def vae_decode(vae: Any, latent: torch.Tensor) -> torch.Tensor:
    """latent -> IMAGE [1, H, W, C] (one frame of a video VAE's [B, T, H, W, C])."""
    image = vae.decode(latent)
    while image.ndim > 4:
        image = image[:, 0]
    return image


# --------------------------------------------------------------------------- text generation by a CLIP (newer cores)
# Upstream's contract (core's Generate Text node): tokenize(prompt, image=..., skip_template=..., min_length=...,
# thinking=..., system_prompt=... in newer cores), generate(tokens, do_sample=..., max_length=..., temperature=...,
# top_k=..., top_p=..., min_p=..., repetition_penalty=..., seed=...), decode(ids). Only keywords every core that
# has it accepts are passed; a core without it (0.3.75 among them) is detected by the missing methods.

def can_generate(clip: Any) -> bool:
    """Whether the CLIP offers upstream's text-generation contract."""
    return all(callable(getattr(clip, name, None)) for name in ("tokenize", "generate", "decode"))


def generation_tokens(clip: Any, prompt: str, image: torch.Tensor | None, system: str | None = None) -> Any:
    """The tokens of one prompt in the model's own chat template (no thinking: answers are JSON)."""
    if system is None:
        return clip.tokenize(prompt, image=image, skip_template=False, min_length=1, thinking=False)
    return clip.tokenize(prompt, image=image, skip_template=False, min_length=1, thinking=False, system_prompt=system)


def generate_text(clip: Any, tokens: Any, max_tokens: int, temperature: float, seed: int) -> str:
    """The answer to ``tokens``: pure temperature sampling, as the other backends do (top_k 0 and top_p 1 turn
    the cuts off; 0 = greedy). presence_penalty is left out: cores before it was added do not take it."""
    sample = temperature > 0
    ids = clip.generate(tokens, do_sample=sample, max_length=max_tokens, temperature=temperature if sample else 1.0,
                        top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, seed=seed)
    return clip.decode(first_sequence(ids))


def first_sequence(ids: Any) -> Any:
    """The generated ids: cores have returned one sequence, or a batch of one."""
    if hasattr(ids, "dim"):
        return ids[0] if ids.dim() == 2 else ids
    if isinstance(ids, (list, tuple)) and ids:
        first = ids[0]
        if isinstance(first, (list, tuple)) or (hasattr(first, "dim") and first.dim() == 1):
            return first
    return ids
