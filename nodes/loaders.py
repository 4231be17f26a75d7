"""Loader nodes for the perception models, cached and under ComfyUI's memory management."""

from __future__ import annotations

import os

from comfy_api.latest import io

from cielr_core import settings as S
from cielr_core.errors import ModelNotFoundError
from cielr_core.perception import sources

from .base import PERCEPTION, CIELRNode, Detector, Segmenter, choice, out, widget
from .memory import Managed, OnDevice, cached, fingerprint, manage
from .model_folders import folders, model_choices, resolve


def require_model(key: str, name: str, what: str, expected: tuple[str, ...], source: str) -> str:
    """The path of model ``name`` in the ``key`` folders, or an error naming the files expected there,
    the folders looked in and where to get one."""
    path = resolve(key, name)
    if path is None:
        raise ModelNotFoundError(what, [name, *[e for e in expected if e != name]], folders(key), source)
    return path


def loaded(kind, name: str, used_by: str):
    """The output of a loader node."""
    return out(kind, name, f"The {name}, for {used_by}. Loaded once; it gives way when the diffusion model needs "
                           "the memory.")


def file_fingerprint(key: str, name: str):
    """Changes when the file behind a model choice is replaced, so ComfyUI runs the loader again."""
    path = resolve(key, name)
    return fingerprint(path) if path else None


class CIELRGroundingDINOLoader(CIELRNode, title="CIELR GroundingDINO Loader", stage=PERCEPTION,
                               aliases=("grounding dino", "open vocabulary detector", "object detection model")):
    """Loads GroundingDINO, the open-vocabulary detector that finds boxes for object names. The architecture
    (SwinT-OGC, SwinB-COGCOOR) is read from the file itself."""

    OUTPUTS = (loaded(Detector, "detector", "Perceive, Refine Scene, Inpaint Actions and Verify Edit"),)

    @classmethod
    def inputs(cls):
        return [
            choice("model_name", model_choices("grounding-dino", (".pth", ".safetensors"),
                                               list(sources.GROUNDING_DINO_FILES), dirs=True),
                   "GroundingDINO weights in models/grounding-dino (or models/groundingdino): "
                   "groundingdino_swint_ogc.pth, groundingdino_swinb_cogcoor.pth, or a Hugging Face "
                   "GroundingDINO folder."),
            choice("text_encoder", model_choices("bert-base-uncased", (), [sources.BERT_FOLDER], dirs=True),
                   "The BERT folder GroundingDINO reads text with (models/bert-base-uncased). Not used by "
                   "Hugging Face GroundingDINO folders, which carry their own."),
            widget(S.NODE_DEVICE),
        ]

    @classmethod
    def fingerprint_inputs(cls, model_name, text_encoder, device):
        return str([file_fingerprint("grounding-dino", model_name),
                    file_fingerprint("bert-base-uncased", text_encoder)])

    @classmethod
    def execute(cls, model_name: str, text_encoder: str, device: str) -> io.NodeOutput:
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

        return io.NodeOutput(OnDevice(cached(key, build)))


class CIELRSAMLoader(CIELRNode, title="CIELR SAM Loader", stage=PERCEPTION,
                     aliases=("segment anything", "sam", "segmentation model", "load segmenter")):
    """Loads Segment Anything, which turns each detected box into a pixel mask. Any ViT size loads."""

    OUTPUTS = (loaded(Segmenter, "segmenter", "Perceive, Refine Scene, the scene importers and the verification"),)

    @classmethod
    def inputs(cls):
        return [
            choice("model_name", model_choices("sams", (".pth", ".safetensors"), list(sources.SAM_FILES)),
                   "SAM weights in models/sams: sam_vit_b_01ec64.pth (fast), sam_vit_l_0b3195.pth or "
                   "sam_vit_h_4b8939.pth (best masks)."),
            widget(S.NODE_DEVICE),
        ]

    @classmethod
    def fingerprint_inputs(cls, model_name, device):
        return str(file_fingerprint("sams", model_name))

    @classmethod
    def execute(cls, model_name: str, device: str) -> io.NodeOutput:
        weights = require_model("sams", model_name, "Segment Anything model", sources.SAM_FILES,
                                sources.SAM_SOURCE)

        def build() -> Managed:
            from cielr_core.perception import load_sam

            return manage(load_sam(weights, device="cpu"), device)

        return io.NodeOutput(OnDevice(cached(("sam", fingerprint(weights), device), build)))


NODES = (CIELRGroundingDINOLoader, CIELRSAMLoader)
