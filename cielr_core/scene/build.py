"""Build scenes: objects from detections, merging refinement results, relations and depth.

Every function returns new objects and scenes; inputs are never mutated (mask arrays may be
shared, they are treated as read-only).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError
from ..images import MAX_SIDE
from .masks import check_mask, mask_geometry
from .model import Box, Scene, SceneObject
from .relations import compute_relations


def _check_size(width: int, height: int) -> None:
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))):
        raise InputError(f"scene size must be integers, got {width!r} x {height!r}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise InputError(f"scene size {width}x{height} is out of range (each side 1..{MAX_SIDE})")


def _box(box: Sequence[float], width: int, height: int) -> Box:
    """Finite x0, y0, x1, y1 clipped to the image (detectors overshoot the border a little)."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        b = np.zeros(0)
    if b.size != 4 or not np.isfinite(b).all():
        raise InputError(f"a box must be 4 finite numbers x0, y0, x1, y1, got {box!r:.80}")
    x0, x1 = sorted(np.clip(b[[0, 2]], 0, width))
    y0, y1 = sorted(np.clip(b[[1, 3]], 0, height))
    return (float(x0), float(y0), float(x1), float(y1))


HORIZONTAL = ("left", "center", "right")
VERTICAL = ("top", "middle", "bottom")


def position_words(cx: float, cy: float, width: int, height: int) -> tuple[str, str]:
    """Thirds of the image: (left|center|right, top|middle|bottom)."""
    return HORIZONTAL[min(2, max(0, int(3 * cx / width)))], VERTICAL[min(2, max(0, int(3 * cy / height)))]


def make_object(id: int, label: str, score: float, box: Sequence[float], mask: np.ndarray,
                parent: int | None = None) -> SceneObject:
    """One scene object; area, centroid and position come from the mask (box centre if empty)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"a mask must be a 2-D H x W array, got shape {tuple(m.shape)}")
    height, width = m.shape
    m = check_mask(m, height, width)
    if not math.isfinite(float(score)):
        raise InputError(f"object score must be a finite number, got {score!r}")
    b = _box(box, width, height)
    geometry = mask_geometry(m)  # one whole-mask pass for area and centroid
    if geometry is None:
        count, centroid = 0, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    else:
        _, count, centroid = geometry
    return SceneObject(
        id=int(id), label=str(label), score=float(score), box=b, mask=m,
        area=count / m.size if m.size else 0.0, centroid=centroid,
        position=position_words(*centroid, width, height), parent=parent,
    )


def scene_from_detections(width: int, height: int, boxes: Sequence, scores: Sequence,
                          labels: Sequence[str], masks: np.ndarray, start_id: int = 1,
                          parent: int | None = None) -> Scene:
    """A raw scene (relations None) with ids start_id, start_id + 1, ... in detection order."""
    _check_size(width, height)
    try:
        boxes = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("boxes must be an N x 4 array of numbers") from None
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes must be an N x 4 array (x0, y0, x1, y1), got shape {boxes.shape}")
    n = len(boxes)
    if len(scores) != n or len(labels) != n:
        raise InputError(f"detections disagree: {n} boxes, {len(scores)} scores, {len(labels)} labels")
    masks = np.asarray(masks)
    if n == 0:
        return Scene(width=width, height=height, objects=[], relations=None)
    if masks.ndim != 3 or masks.shape[0] != n:
        raise InputError(f"expected {n} masks as an N x H x W array, got shape {tuple(masks.shape)}")
    objects = [make_object(start_id + i, labels[i], float(scores[i]), boxes[i],
                           check_mask(masks[i], height, width), parent)
               for i in range(n)]
    return Scene(width=width, height=height, objects=objects, relations=None)


def merge_objects(scene: Scene, new_objects: Sequence[SceneObject]) -> Scene:
    """A new scene with ``new_objects`` appended under fresh ids (scene.next_id onward).

    Existing ids never change, so the LLM's references stay valid; relations are reset to None
    because they must be recomputed over the larger set.
    """
    first = scene.next_id
    added = []
    for k, o in enumerate(new_objects):
        mask = check_mask(o.mask, scene.height, scene.width)
        added.append(dataclasses.replace(o, id=first + k, mask=mask, attributes=dict(o.attributes)))
    old = [dataclasses.replace(o, attributes=dict(o.attributes)) for o in scene.objects]
    return Scene(width=scene.width, height=scene.height, objects=old + added, relations=None)


def _depth_map(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """H x W float32 in [0, 1], larger = nearer, resized to the image when needed.

    Integer maps are scaled by their type's maximum; float maps already in [0, 1] (ComfyUI
    IMAGE) are kept; other float maps (raw MiDaS output) are min-max normalised. A map of
    another size is resized to the image with PIL's bilinear filter.
    """
    d = np.asarray(depth)
    if d.ndim == 3:
        d = d[:, :, 0]  # depth preprocessors repeat the grey value in every channel
    if d.ndim != 2 or d.size == 0:
        raise InputError(f"depth map must be H x W or H x W x C, got shape {tuple(np.asarray(depth).shape)}")
    if d.dtype == np.bool_ or not np.issubdtype(d.dtype, np.number):
        raise InputError(f"depth map has unsupported type {d.dtype}")
    if np.issubdtype(d.dtype, np.integer):
        d = d.astype(np.float32) / float(np.iinfo(d.dtype).max)
    else:
        d = d.astype(np.float32)
        if not np.isfinite(d).all():
            raise InputError("depth map contains NaN or infinite values")
        lo, hi = float(d.min()), float(d.max())
        if lo < 0.0 or hi > 1.0:
            d = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    if d.shape != (height, width):
        d = np.asarray(Image.fromarray(d).resize((width, height), Image.BILINEAR))
    return np.clip(d, 0.0, 1.0)


def _object_depth(d: np.ndarray, o: SceneObject) -> float:
    if o.mask.any():
        return float(np.median(d[o.mask]))
    h, w = d.shape
    x0, y0, x1, y1 = o.box
    xa, ya = min(int(x0), w - 1), min(int(y0), h - 1)
    xb, yb = max(int(math.ceil(x1)), xa + 1), max(int(math.ceil(y1)), ya + 1)
    return float(np.median(d[ya:yb, xa:xb]))


def _size(o: SceneObject) -> float:
    """Mask pixels, or box area for box-only objects (so they still get a sensible rank)."""
    n = float(np.count_nonzero(o.mask))
    return n if n else (o.box[2] - o.box[0]) * (o.box[3] - o.box[1])


def build_scene(scene: Scene, depth: np.ndarray | None = None) -> Scene:
    """A new scene with relations, size ranks and (given a depth map) per-object depth."""
    _check_size(scene.width, scene.height)
    ids = [o.id for o in scene.objects]
    if len(set(ids)) != len(ids):
        raise InputError(f"object ids must be unique, got {ids}")
    objects = []
    for o in scene.objects:
        mask = check_mask(o.mask, scene.height, scene.width)
        objects.append(dataclasses.replace(o, mask=mask, attributes=dict(o.attributes)))
    order = sorted(objects, key=lambda o: (-_size(o), o.id))
    for rank, o in enumerate(order, start=1):
        o.size_rank = rank
    if depth is not None:
        d = _depth_map(depth, scene.width, scene.height)
        for o in objects:
            o.depth = _object_depth(d, o)
    relations = compute_relations(objects, scene.width, scene.height)
    return Scene(width=scene.width, height=scene.height, objects=objects, relations=relations)
