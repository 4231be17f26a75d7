"""Models under ComfyUI's memory management: one cache of loaded models for every CIELR loader node,
each model under a ModelPatcher so ComfyUI can move it off the GPU (or free it) when the diffusion model
needs the room, and one seam that brings a model back when it is used (``OnDevice``)."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cielr_core.cache import LRU

from . import comfy_internals as comfy

CACHE_SIZE = 4

_MODELS = LRU(CACHE_SIZE)  # the one cache of loaded models (perception and local LLMs)


@dataclass
class Managed:
    """A loaded model plus the ModelPatcher that lets ComfyUI move it off the GPU when the
    diffusion model needs the room."""

    core: Any  # cielr_core Detector, Segmenter or local LLM weights
    patcher: Any

    def ready(self) -> Any:
        """The model, on its device again (ComfyUI may have pushed it off since its last use)."""
        comfy.load_onto_device(self.patcher)
        self.core.to(self.patcher.load_device)
        return self.core


class OnDevice:
    """What a loader node hands on: the model (or ``target``, e.g. an LLM client over the weights), whose
    every method call first asks ComfyUI to put the weights back on their device. The library receives it
    as it would the model itself, so no node and no library stage has to remember to do it."""

    def __init__(self, managed: Managed, target: Any = None):
        self.managed = managed
        self.target = managed.core if target is None else target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.target, name)
        if name.startswith("_") or not inspect.ismethod(value):
            return value

        @functools.wraps(value)
        def on_device(*args: Any, **kwargs: Any) -> Any:
            self.managed.ready()
            return value(*args, **kwargs)

        return on_device

    def __repr__(self) -> str:
        return f"OnDevice({self.target!r})"


def fingerprint(path: str) -> tuple:
    """Changes when the file (or any file of an HF folder) is replaced, so the cache notices."""
    paths = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
    return tuple(sorted((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths))


def devices(choice: str):
    """(load device, offload device) for a node's device choice."""
    if choice == "cpu":
        import torch

        return torch.device("cpu"), torch.device("cpu")
    return comfy.torch_device(), comfy.offload_device()


def cached(key: tuple, build: Callable[[], Managed]) -> Managed:
    """The model under ``key``, built on first use; the least recently used one beyond CACHE_SIZE is
    dropped (ComfyUI forgets its patcher with it)."""
    return _MODELS.get(key, build)


def manage(core: Any, device: str) -> Managed:
    """A model with a torch ``.model`` and ``.to(device)``, under a ModelPatcher."""
    import torch

    class Holder(torch.nn.Module):
        """ModelPatcher writes ``.device`` on the module it manages; SAM's is a read-only property."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.device = None

    load_device, offload_device = devices(device)
    core.to(offload_device)
    return Managed(core, comfy.model_patcher(Holder(core.model), load_device, offload_device))


def manage_llama(model: Any, device: str) -> Managed:
    """A llama.cpp model (``LlamaModel``) under ComfyUI's memory management: loading it makes ComfyUI
    free the file's size first, and when ComfyUI unloads it (the diffusion model needs the room) the
    model is closed, to be opened again by the next LLM call."""
    # weights as on disk, plus the KV cache and compute buffers (about a tenth more for these sizes)
    size = int(os.path.getsize(model.path) * 1.1) + (64 << 20)
    load_device, offload_device = devices(device)
    patcher = comfy.external_patcher(size, lambda: model.is_loaded, model.release,
                                     f"the local LLM {os.path.basename(model.path)}", load_device, offload_device)
    return Managed(model, patcher)
