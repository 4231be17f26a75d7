"""Perception: labels -> GroundingDINO boxes -> SAM masks -> a raw scene (no relations yet)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import InputError
from ..images import to_rgb_uint8
from ..labels import clean_labels
from ..progress import NO_PROGRESS, Progress
from ..scene import Scene, scene_from_detections
from ..scene.external import FROM_BOX_SHAPE, MASK_ATTRIBUTE, box_shaped_masks
from ..scene.model import Box
from ..settings import BOX_THRESHOLD, TEXT_THRESHOLD
from .detections import Detections


class DetectorLike(Protocol):
    """What perception needs of a detector: ``detector.Detector`` (GroundingDINO) is one."""

    def detect(self, image: np.ndarray, labels: list[str], box_threshold: float = ...,
               text_threshold: float = ..., within: Box | None = ..., progress: Progress = ...) -> Detections: ...


class SegmenterLike(Protocol):
    """What perception needs of a segmenter: ``segmenter.Segmenter`` (SAM) is one."""

    def segment(self, image: np.ndarray, boxes: np.ndarray, progress: Progress = ...) -> np.ndarray: ...


def detect_objects(image: np.ndarray, detector: DetectorLike, segmenter: SegmenterLike | None,
                   labels: list[str], *,
                   box_threshold: float = BOX_THRESHOLD.default, text_threshold: float = TEXT_THRESHOLD.default,
                   within: Box | None = None,
                   parent: int | None = None, start_id: int = 1, progress: Progress = NO_PROGRESS) -> Scene:
    """Detect ``labels`` (optionally inside one box) and segment every box; ids start at ``start_id``.

    Without a segmenter each box becomes a box-shaped mask, and the object says so in its attributes.
    """
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    progress.start(2)
    cancel_only = Progress(on_check=progress.on_check)
    found = detector.detect(rgb, labels, box_threshold=box_threshold, text_threshold=text_threshold,
                            within=within, progress=cancel_only)
    progress.advance()
    if not len(found):
        masks = np.zeros((0, h, w), bool)
    elif segmenter is None:
        masks = box_shaped_masks(found.boxes, w, h)
    else:
        masks = segmenter.segment(rgb, found.boxes, progress=cancel_only)
    progress.advance()
    scene = scene_from_detections(w, h, found.boxes, found.scores, found.labels, masks,
                                  start_id=start_id, parent=parent)
    if segmenter is None:
        for o in scene.objects:
            o.attributes[MASK_ATTRIBUTE] = FROM_BOX_SHAPE
    return scene


def perceive(image: np.ndarray, detector: DetectorLike, segmenter: SegmenterLike, labels: str | list[str], *,
             box_threshold: float = BOX_THRESHOLD.default, text_threshold: float = TEXT_THRESHOLD.default,
             progress: Progress = NO_PROGRESS) -> Scene:
    """The first look at a photo: every instance of every label, as a raw scene."""
    names = clean_labels(labels)
    if not names:
        raise InputError("no object names to look for: type at least one label, e.g. 'tv, speaker, lamp' "
                         f"(got {str(labels)[:80]!r})")
    return detect_objects(image, detector, segmenter, names, box_threshold=box_threshold,
                          text_threshold=text_threshold, progress=progress)
