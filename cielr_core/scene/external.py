"""Scenes from other tools' output: masks (one object per mask), boxes, or both.

Other ComfyUI packs segment with SAM2, Florence-2, YOLO, Impact Pack detectors and more; what they
hand over is, per object, a mask or a box, a label and maybe a score. ``scene_from_parts`` turns
that into a raw scene (relations come from ``build_scene`` as for CIELR's own perception).

Ids are positional: part k (counted from 0) gets id ``first_id + k`` even when another part is
dropped, so a plan typed against "mask 3 is #3" stays valid when mask 2 happens to come out empty.
Every dropped part and every box turned into a mask is written into the notes, and the scene's
objects carry how their mask was made in ``attributes["mask"]``, which the LLM reads too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .build import _box, _check_size, make_object
from .json_io import MAX_LABEL, MAX_OBJECTS
from .masks import box_mask, check_mask, mask_box
from .model import Box, Scene

# The attribute that says how an object's mask was made (shown to the LLM as "mask=...").
MASK_ATTRIBUTE = "mask"
FROM_BOX_SAM = "segmented from a box"
FROM_BOX_SHAPE = "box shape, no segmenter"
MASK_THRESHOLD = 0.5  # soft masks count where they are above this (as check_mask does)

# boxes -> one bool H x W mask per box; the SAM segmenter, wrapped by the caller
Segment = Callable[[np.ndarray], np.ndarray]


@dataclass
class Part:
    """One object from another tool: a mask, or a box when there is no mask."""

    label: str
    score: float = 1.0
    mask: np.ndarray | None = None  # H x W, bool or numbers (thresholded at 0.5)
    box: Box | None = None  # x0, y0, x1, y1 in pixels, end-exclusive; used when mask is None
    name: str = ""  # how the report names it: "mask 3", "SEG 2", "box 1"


@dataclass
class Imported:
    scene: Scene
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        n = len(self.scene.objects)
        head = (f"{n} object{'s' if n != 1 else ''} in a {self.scene.width}x{self.scene.height} scene: "
                + (", ".join(f"#{o.id} {o.label}" for o in self.scene.objects) or "none"))
        return "\n".join([head, *self.notes])


def _items(text: str, what: str) -> list[str]:
    """Split on new lines when there are several lines, else on commas; outer blanks dropped."""
    body = str(text).strip()
    if not body:
        return []
    items = [s.strip() for s in re.split(r"\r?\n" if "\n" in body else ",", body)]
    while items and not items[-1]:
        items.pop()
    for k, item in enumerate(items, 1):
        if not item:
            raise InputError(f"{what} {k} is empty in {body[:120]!r}; write one per object, separated by "
                             "commas or new lines (in the order of the objects)")
    return items


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + ("es" if word.endswith(("s", "x")) else "s")


def _per_object(values: list, count: int, what: str, unit: str) -> list:
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise InputError(f"{count} {_plural(unit, count)} but {len(values)} {_plural(what, len(values))}: give one "
                         f"{what} per {unit} (in their order), or one {what} for all")
    return values


def split_labels(text: str, count: int, unit: str = "mask") -> list[str]:
    """One label per object from free text (commas or lines), or one label repeated for all."""
    labels = [" ".join(s.split()) for s in _items(text, "label")]
    if not labels:
        raise InputError(f"no labels given: name the objects, one label per {unit} (in batch order) or "
                         "one label for all, separated by commas or new lines")
    for label in labels:
        if len(label) > MAX_LABEL:
            raise InputError(f"label {label[:40]!r}... is {len(label)} characters long; at most {MAX_LABEL}")
    return _per_object(labels, count, "label", unit)


def split_scores(text: str, count: int, unit: str = "mask", own: Sequence[float | None] = ()) -> list[float]:
    """Scores 0..1 from free text, one per object or one for all. Empty text gives each object its
    ``own`` score (what the detector wrote with it), else 1.0."""
    items = _items(text, "score")
    if not items:
        if own and len(own) != count:
            raise ValueError(f"{len(own)} own scores for {count} objects")
        return [1.0 if s is None else float(s) for s in own] if own else [1.0] * count
    return _per_object([_score(item) for item in items], count, "score", unit)


def _score(item: object) -> float:
    try:
        value = float(item)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"score {item!r} is not a number; write numbers from 0 to 1 separated by commas") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InputError(f"score {item!r} is out of range; scores go from 0 to 1")
    return value


BOX_KEYS = ("x", "y", "width", "height")


# keys of the dict items some packs put into BBOX lists (read by the nodes' BBOX reader)
BBOX_DICT_KEYS = ("bbox", "bbox_2d", "box")


def is_bounding_box(value: object) -> bool:
    """Whether boxes are ComfyUI's BOUNDING_BOX (dicts of x, y, width, height; ``box_dicts`` reads them)
    rather than another pack's BBOX list (numbers, or dicts holding a "bbox"). No boxes is neither."""
    items = [value] if isinstance(value, dict) else list(value) if isinstance(value, (list, tuple)) else []
    if items and all(isinstance(i, (list, tuple)) for i in items):
        items = [j for i in items for j in i]
    return bool(items) and all(isinstance(i, dict) and not any(k in i for k in BBOX_DICT_KEYS) for i in items)


def box_dicts(value: object, what: str = "BOUNDING_BOX") -> tuple[list[Box], list[float | None]]:
    """Boxes as ComfyUI's BOUNDING_BOX type holds them -> (x0, y0, x1, y1 boxes, their scores).

    Core's SAM3 Detect writes, per image, a list of ``{"x", "y", "width", "height", "score"}`` dicts
    (pixels, corner plus size); the box widget writes one dict without a score. Accepted: one dict,
    a list of dicts (one image), or a list per image with exactly one image in it. A box without a
    score gets None; no boxes at all gives two empty lists.
    """
    if isinstance(value, dict):
        items: list = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if items and all(isinstance(i, (list, tuple)) for i in items):
            if len(items) != 1:
                raise InputError(f"the {what} input holds boxes for {len(items)} images; CIELR works on one image "
                                 "at a time (pick that image's boxes first)")
            items = list(items[0])
    else:
        raise InputError(f"the {what} input is a {type(value).__name__}, not a list of boxes "
                         "({'x', 'y', 'width', 'height', 'score'} per box)")
    boxes: list[Box] = []
    scores: list[float | None] = []
    for k, item in enumerate(items, 1):
        if not isinstance(item, dict) or not all(key in item for key in BOX_KEYS):
            raise InputError(f"{what} box {k} is not a dict with {', '.join(BOX_KEYS)}: {str(item)[:80]}")
        try:
            x, y, w, h = (float(item[key]) for key in BOX_KEYS)
        except (TypeError, ValueError):
            x = y = w = h = math.nan
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
            raise InputError(f"{what} box {k} needs finite numbers and a size of 0 or more: {str(item)[:80]}")
        boxes.append((x, y, x + w, y + h))
        scores.append(None if item.get("score") is None else _score(item["score"]))
    return boxes, scores


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def scene_from_parts(width: int, height: int, parts: Sequence[Part], segment: Segment | None = None,
                     first_id: int = 1) -> Imported:
    """A raw scene (relations None) from masks and boxes; ids follow the parts' positions.

    Mask parts: thresholded at 0.5 (bool masks as they are); an empty mask is dropped and noted.
    Box parts: clipped to the image; with ``segment`` (a SAM segmenter) each box is segmented,
    otherwise the box itself becomes the mask; either way the object notes it. A box with no
    area inside the image is dropped and noted.
    """
    _check_size(width, height)
    if len(parts) > MAX_OBJECTS:
        raise InputError(f"{len(parts)} objects is more than a scene holds ({MAX_OBJECTS}); pass fewer masks")
    notes: list[str] = []
    kept: list[tuple[int, Part, np.ndarray, Box]] = []  # (id, part, bool mask, box)
    boxes: list[tuple[int, Part, Box]] = []
    for k, part in enumerate(parts):
        object_id = first_id + k
        name = part.name or f"object {k + 1}"
        if part.mask is not None:
            mask = check_mask(part.mask, height, width)
            box = mask_box(mask)
            if box is None:
                notes.append(f"{name} ({part.label}) is empty (nothing above {MASK_THRESHOLD}): dropped, "
                             f"#{object_id} is not used.")
                continue
            kept.append((object_id, part, mask, box))
        elif part.box is not None:
            box = _box(part.box, width, height)
            if _area(box) <= 0:
                notes.append(f"{name} ({part.label}) has no area inside the {width}x{height} image: dropped, "
                             f"#{object_id} is not used.")
                continue
            boxes.append((object_id, part, box))
        else:
            raise InputError(f"{name} ({part.label}) has neither a mask nor a box")
    made: dict[int, tuple[np.ndarray, str]] = {}
    if boxes:
        shaped = [box_mask(b, width, height) for _, _, b in boxes]
        if segment is not None:
            masks = np.asarray(segment(np.array([b for _, _, b in boxes], dtype=np.float32)))
            if masks.shape != (len(boxes), height, width):
                raise InputError(f"the segmenter returned masks of shape {masks.shape}, expected "
                                 f"{(len(boxes), height, width)}")
            for (object_id, part, _), mask, fallback in zip(boxes, masks, shaped):
                if mask.any():
                    made[object_id] = (mask.astype(bool), FROM_BOX_SAM)
                else:  # SAM found nothing in the box: the box is still where the object is
                    made[object_id] = (fallback, FROM_BOX_SHAPE)
                    notes.append(f"{part.name or 'a box'} ({part.label}): the segmenter found nothing in the box, "
                                 "so the box itself is the mask.")
            sam = sum(how == FROM_BOX_SAM for how in (v[1] for v in made.values()))
            notes.append(f"{sam} of {len(boxes)} {_plural('box', len(boxes))} segmented by SAM.")
        else:
            for (object_id, _, _), mask in zip(boxes, shaped):
                made[object_id] = (mask, FROM_BOX_SHAPE)
            notes.append(f"{len(boxes)} {_plural('box', len(boxes))} without a segmenter: box-shaped "
                         "masks (connect CIELR SAM Loader for object outlines).")
    objects = []
    for object_id, part, mask, box in kept:
        objects.append(make_object(object_id, part.label, part.score, box, mask))
    for object_id, part, box in boxes:
        mask, how = made[object_id]
        o = make_object(object_id, part.label, part.score, box, mask)
        o.attributes[MASK_ATTRIBUTE] = how
        objects.append(o)
    objects.sort(key=lambda o: o.id)
    return Imported(Scene(width=width, height=height, objects=objects, relations=None), notes)


def box_shaped_masks(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """N x H x W bool masks, one per box (for detections when no segmenter is connected)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), height, width), dtype=bool)
    for k, b in enumerate(boxes):
        out[k] = box_mask(_box(b, width, height), width, height)
    return out
