"""Models under ComfyUI's memory management: one cache of loaded models for every CIELR loader node,
each model wrapped in a ModelPatcher so ComfyUI can move it off the GPU (or free it) when the
diffusion model needs the room."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cielr_core.cache import LRU

log = logging.getLogger(__name__)

DEVICES = ["auto", "cpu"]
DEVICE_TIP = "auto: the device ComfyUI runs models on (the GPU when there is one); cpu: keep it off the GPU."
CACHE_SIZE = 4


_MODELS = LRU(CACHE_SIZE)  # the one cache of loaded models (perception and local LLMs)


@dataclass
class Managed:
    """A loaded model plus the ModelPatcher that lets ComfyUI move it off the GPU when the
    diffusion model needs the room."""

    core: Any  # cielr_core Detector, Segmenter or local LLM weights
    patcher: Any

    def ready(self) -> Any:
        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])
        self.core.to(self.patcher.load_device)
        return self.core


def fingerprint(path: str) -> tuple:
    """Changes when the file (or any file of an HF folder) is replaced, so the cache notices."""
    paths = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
    return tuple(sorted((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths))


def devices(choice: str):
    """(load device, offload device) for a node's device choice."""
    import comfy.model_management as mm

    if choice == "cpu":
        import torch

        return torch.device("cpu"), torch.device("cpu")
    return mm.get_torch_device(), mm.unet_offload_device()


def cached(key: tuple, build: Callable[[], Managed]) -> Managed:
    """The model under ``key``, built on first use; the least recently used one beyond CACHE_SIZE is
    dropped (ComfyUI forgets its patcher with it)."""
    return _MODELS.get(key, build)


def manage(core: Any, device: str) -> Managed:
    """A model with a torch ``.model`` and ``.to(device)``, under a ModelPatcher."""
    import comfy.model_patcher
    import torch

    class Holder(torch.nn.Module):
        """ModelPatcher writes ``.device`` on the module it manages; SAM's is a read-only property."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.device = None

    load_device, offload_device = devices(device)
    core.to(offload_device)
    return Managed(core, comfy.model_patcher.ModelPatcher(Holder(core.model), load_device, offload_device))


def manage_llama(model: Any, device: str) -> Managed:
    """A llama.cpp model (``LlamaModel``) under ComfyUI's memory management. Its memory is not a torch
    module, so a ModelPatcher around an empty module stands in for it, with the file's size: loading it
    makes ComfyUI free that much room first, and when ComfyUI unloads it (the diffusion model needs the
    room) the llama.cpp model is closed, to be opened again by the next LLM call."""
    import comfy.model_patcher
    import torch

    # weights as on disk, plus the KV cache and compute buffers (about a tenth more for these sizes)
    size = int(os.path.getsize(model.path) * 1.1) + (64 << 20)

    class LlamaPatcher(comfy.model_patcher.ModelPatcher):
        def loaded_size(self):
            return self.size if model.is_loaded else 0

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            return 0  # nothing to move: the next LLM call opens the model on its device

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            return self.size if model.release() else 0

        def detach(self, unpatch_all=True):
            # unpatch_all=False: ComfyUI registers the model again for the next call (load_models_gpu
            # detaches a model it already holds); closing it then would lose the KV cache of the edit
            if unpatch_all and model.release():
                log.info("freed the local LLM %s for ComfyUI (loaded again when next asked)",
                         os.path.basename(model.path))
            return super().detach(unpatch_all)

    load_device, offload_device = devices(device)
    return Managed(model, LlamaPatcher(torch.nn.Module(), load_device, offload_device, size=size))
