"""Loader nodes for the perception models, cached and under ComfyUI's memory management."""

from __future__ import annotations

import os

from cielr_core.errors import ModelNotFoundError
from cielr_core.perception import sources

from .base import CIELRNode
from .memory import DEVICE_TIP, DEVICES, Managed, cached, fingerprint, manage
from .model_folders import folders, model_choices, resolve


def require_model(key: str, name: str, what: str, expected: tuple[str, ...], source: str) -> str:
    """The path of model ``name`` in the ``key`` folders, or an error naming the files expected there,
    the folders looked in and where to get one."""
    path = resolve(key, name)
    if path is None:
        raise ModelNotFoundError(what, [name, *[e for e in expected if e != name]], folders(key), source)
    return path


class CIELRGroundingDINOLoader(CIELRNode):
    """Loads GroundingDINO, the open-vocabulary detector that finds boxes for object names. The architecture
    (SwinT-OGC, SwinB-COGCOOR) is read from the file itself."""

    FUNCTION = "load"
    OUTPUTS = (("CIELR_DETECTOR", "detector"),)

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
        return str([fingerprint(p) if p else None for p in paths])

    def load(self, model_name: str, text_encoder: str, device: str):
        weights = require_model("grounding-dino", model_name, "GroundingDINO model",
                                sources.GROUNDING_DINO_FILES, sources.GROUNDING_DINO_SOURCE)
        hf_folder = os.path.isdir(weights)
        bert = None if hf_folder else require_model("bert-base-uncased", text_encoder,
                                                    "GroundingDINO text encoder (a bert-base-uncased folder)",
                                                    (sources.BERT_FOLDER,), sources.BERT_SOURCE)
        key = ("gdino", fingerprint(weights), bert and fingerprint(bert), device)

        def build() -> Managed:
            from cielr_core.perception import load_grounding_dino

            return manage(load_grounding_dino(weights, bert, device="cpu"), device)

        return (cached(key, build),)


class CIELRSAMLoader(CIELRNode):
    """Loads Segment Anything, which turns each detected box into a pixel mask. Any ViT size loads."""

    FUNCTION = "load"
    OUTPUTS = (("CIELR_SEGMENTER", "segmenter"),)

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
        return str(fingerprint(path) if path else None)

    def load(self, model_name: str, device: str):
        weights = require_model("sams", model_name, "Segment Anything model", sources.SAM_FILES,
                                sources.SAM_SOURCE)

        def build() -> Managed:
            from cielr_core.perception import load_sam

            return manage(load_sam(weights, device="cpu"), device)

        return (cached(("sam", fingerprint(weights), device), build),)


NODE_CLASS_MAPPINGS = {
    "CIELRGroundingDINOLoader": CIELRGroundingDINOLoader,
    "CIELRSAMLoader": CIELRSAMLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CIELRGroundingDINOLoader": "CIELR GroundingDINO Loader",
    "CIELRSAMLoader": "CIELR SAM Loader",
}
