"""Perception: GroundingDINO finds boxes for labels, SAM turns each box into a mask.

Loaders import torch, transformers and segment_anything only when called.
"""

from ..dependencies import require
from .detections import Detections
from .perceive import detect_objects, perceive


def load_grounding_dino(weights, *args, **kwargs):
    from .detector import load_grounding_dino as load

    return load(weights, *args, **kwargs)


def load_sam(*args, **kwargs):
    require("segment_anything", "segment-anything", "the SAM segmenter")
    from .segmenter import load_sam as load

    return load(*args, **kwargs)


__all__ = ["Detections", "detect_objects", "perceive", "load_grounding_dino", "load_sam"]
