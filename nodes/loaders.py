"""Loader nodes for the perception models, cached and under ComfyUI's memory management."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cielr_core.errors import ModelNotFoundError
from cielr_core.perception import sources

from .model_folders import folders, model_choices, resolve

DEVICES = ["auto", "cpu"]
DEVICE_TIP = "auto: the device ComfyUI runs models on (the GPU when there is one); cpu: keep it off the GPU."
_CACHE: OrderedDict[tuple, "Managed"] = OrderedDict()
_CACHE_SIZE = 4


@dataclass
class Managed:
    """A loaded perception model plus the ModelPatcher that lets ComfyUI move it off the GPU when the
    diffusion model needs the room."""

    core: Any  # cielr_core Detector or Segmenter
    patcher: Any

    def ready(self) -> Any:
        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])
        self.core.to(self.patcher.load_device)
        return self.core


def _fingerprint(path: str) -> tuple:
    """Changes when the file (or any file of an HF folder) is replaced, so the cache notices."""
    paths = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
    return tuple(sorted((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths))


def _devices(choice: str):
    import comfy.model_management as mm

    if choice == "cpu":
        import torch

        return torch.device("cpu"), torch.device("cpu")
    return mm.get_torch_device(), mm.unet_offload_device()


def _cached(key: tuple, build) -> Managed:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    managed = build()
    _CACHE[key] = managed
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return managed


def _manage(core: Any, device: str) -> Managed:
    import comfy.model_patcher
    import torch

    class Holder(torch.nn.Module):
        """ModelPatcher writes ``.device`` on the module it manages; SAM's is a read-only property."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.device = None

    load_device, offload_device = _devices(device)
    core.to(offload_device)
    return Managed(core, comfy.model_patcher.ModelPatcher(Holder(core.model), load_device, offload_device))


def _require(key: str, name: str, what: str, expected: tuple[str, ...], source: str) -> str:
    path = resolve(key, name)
    if path is None:
        raise ModelNotFoundError(what, [name, *[e for e in expected if e != name]], folders(key), source)
    return path


class CIELRGroundingDINOLoader:
    CATEGORY = "CIELR"
    RETURN_TYPES = ("CIELR_DETECTOR",)
    RETURN_NAMES = ("detector",)
    FUNCTION = "load"
    DESCRIPTION = ("Loads GroundingDINO, the open-vocabulary detector that finds boxes for object names. "
                   "The architecture (SwinT-OGC, SwinB-COGCOOR) is read from the file itself.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (model_choices("grounding-dino", (".pth", ".safetensors"),
                                         list(sources.GROUNDING_DINO_FILES), dirs=True),
                           {"tooltip": "GroundingDINO weights in models/grounding-dino (or models/groundingdino): "
                                       "groundingdino_swint_ogc.pth, groundingdino_swinb_cogcoor.pth, or a "
                                       "Hugging Face GroundingDINO folder."}),
            "text_encoder": (model_choices("bert-base-uncased", (), [sources.BERT_FOLDER], dirs=True),
                             {"tooltip": "The BERT folder GroundingDINO reads text with (models/bert-base-uncased). "
                                         "Not used by Hugging Face GroundingDINO folders, which carry their own."}),
            "device": (DEVICES, {"tooltip": DEVICE_TIP}),
        }}

    @classmethod
    def IS_CHANGED(cls, model_name, text_encoder, device):
        paths = [resolve("grounding-dino", model_name), resolve("bert-base-uncased", text_encoder)]
        return str([_fingerprint(p) if p else None for p in paths])

    def load(self, model_name: str, text_encoder: str, device: str):
        weights = _require("grounding-dino", model_name, "GroundingDINO model", sources.GROUNDING_DINO_FILES,
                           sources.GROUNDING_DINO_SOURCE)
        hf_folder = os.path.isdir(weights)
        bert = None if hf_folder else _require("bert-base-uncased", text_encoder, "GroundingDINO text encoder "
                                               "(a bert-base-uncased folder)", (sources.BERT_FOLDER,),
                                               sources.BERT_SOURCE)
        key = ("gdino", _fingerprint(weights), bert and _fingerprint(bert), device)

        def build() -> Managed:
            from cielr_core.perception import load_grounding_dino

            return _manage(load_grounding_dino(weights, bert, device="cpu"), device)

        return (_cached(key, build),)


class CIELRSAMLoader:
    CATEGORY = "CIELR"
    RETURN_TYPES = ("CIELR_SEGMENTER",)
    RETURN_NAMES = ("segmenter",)
    FUNCTION = "load"
    DESCRIPTION = "Loads Segment Anything, which turns each detected box into a pixel mask. Any ViT size loads."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (model_choices("sams", (".pth", ".safetensors"), list(sources.SAM_FILES)),
                           {"tooltip": "SAM weights in models/sams: sam_vit_b_01ec64.pth (fast), "
                                       "sam_vit_l_0b3195.pth or sam_vit_h_4b8939.pth (best masks)."}),
            "device": (DEVICES, {"tooltip": DEVICE_TIP}),
        }}

    @classmethod
    def IS_CHANGED(cls, model_name, device):
        path = resolve("sams", model_name)
        return str(_fingerprint(path) if path else None)

    def load(self, model_name: str, device: str):
        weights = _require("sams", model_name, "Segment Anything model", sources.SAM_FILES, sources.SAM_SOURCE)

        def build() -> Managed:
            from cielr_core.perception import load_sam

            return _manage(load_sam(weights, device="cpu"), device)

        return (_cached(("sam", _fingerprint(weights), device), build),)


NODE_CLASS_MAPPINGS = {
    "CIELRGroundingDINOLoader": CIELRGroundingDINOLoader,
    "CIELRSAMLoader": CIELRSAMLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CIELRGroundingDINOLoader": "CIELR GroundingDINO Loader",
    "CIELRSAMLoader": "CIELR SAM Loader",
}
