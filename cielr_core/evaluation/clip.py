"""The CLIP score: ``100 * max(cos(image, text), 0)`` (torchmetrics ``CLIPScore``) with a local
transformers CLIPModel. transformers loads only when a model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..images import to_rgb_uint8
from .base import Metric, Unavailable, model_metric

CLIP_PROTOCOL_MODEL = "openai/clip-vit-large-patch14"


class CLIPScorer:
    """``100 * max(cos(image, text), 0)`` with a transformers CLIPModel (torchmetrics' CLIPScore)."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu", source: str = ""):
        self.model = model
        self.processor = processor
        self.device = device
        self.source = source
        text_config = getattr(model.config, "text_config", None)
        self.max_length = int(getattr(text_config, "max_position_embeddings", 77) or 77)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> CLIPScorer:
        """From a local Hugging Face folder only (``local_files_only``); never downloads."""
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
        return cls(model, processor, device, str(folder))

    def __call__(self, image: np.ndarray, text: str) -> float:
        """The CLIP score, 0..100."""
        return max(100.0 * self.similarity(image, text), 0.0)

    def similarity(self, image: np.ndarray, text: str) -> float:
        """Cosine similarity of the image and text embeddings, -1..1."""
        import torch

        pil = Image.fromarray(to_rgb_uint8(image))
        inputs = self.processor(text=[text], images=[pil], return_tensors="pt", padding=True,
                                truncation=True, max_length=self.max_length)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model(**inputs)
        img = torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)
        txt = torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)
        return float((img * txt).sum(-1)[0])


def load_clip(folder: str | Path | None = None, device: str = "cpu") -> CLIPScorer | Unavailable:
    """The CLIP scorer from a local folder, or Unavailable with the reason."""
    if not folder:
        return Unavailable(f"no CLIP model folder given (the protocol uses {CLIP_PROTOCOL_MODEL} in "
                           "Hugging Face "
                           "format, saved locally)")
    if not Path(folder).is_dir():
        return Unavailable(f"CLIP model folder not found: {folder}")
    try:
        return CLIPScorer.load(folder, device)
    except Exception as e:  # noqa: BLE001 (missing files, wrong model type, no transformers: no CLIP)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Unavailable(f"cannot load a CLIP model from {folder}: {type(e).__name__}: {first[:300]}")


def clip_score(image: np.ndarray, text: str, model: CLIPScorer | Unavailable | None) -> Metric:
    """CLIP score of an image crop against a text, or not computed (with the reason) without a model."""
    return model_metric(model, f"no CLIP model given (the protocol uses {CLIP_PROTOCOL_MODEL})", "CLIP score",
                        lambda m: m(image, text))
