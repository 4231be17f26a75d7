"""The scene three ways: compact text for the LLM, JSON for files, and an overlay preview image.

JSON layout ("format": "cielr.scene/1")::

    {"format": "cielr.scene/1", "width": W, "height": H,
     "objects": [{"id": 1, "label": "cup", "score": 0.8, "box": [x0, y0, x1, y1],
                  "mask": {"size": [H, W], "counts": [...]},   # see masks.rle_encode
                  "area": 0.04, "centroid": [x, y], "position": ["center", "bottom"],
                  "depth": null, "parent": null, "size_rank": null, "attributes": {}}],
     "relations": [{"subject": 3, "predicate": "on_top_of", "object": 2}] or null}

``area``, ``centroid``, ``position`` and the nullable fields may be left out when writing a
scene by hand; they are then computed from the mask (or left empty).
"""

from __future__ import annotations

import colorsys
import json
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError
from ..images import MAX_SIDE, to_rgb_uint8
from .build import _box, position_words
from .masks import area_fraction, check_mask, mask_box, mask_centroid, rle_decode, rle_encode
from .model import Relation, Scene, SceneObject, check_same_size
from .relations import PREDICATES

FORMAT = "cielr.scene/1"
MAX_OBJECTS = 1000  # a scene file with more is not a photo's scene; refuse before decoding masks
MAX_LABEL = 200
# Masks are decoded into one bool per pixel per object: a few bytes of JSON per object may declare a
# 16384 x 16384 mask, so the declared total is bounded before any mask is decoded (4 GiB of masks).
MAX_MASK_PIXELS = 2**32
HORIZONTAL = ("left", "center", "right")
VERTICAL = ("top", "middle", "bottom")


# ---------------------------------------------------------------- text for the LLM

def _clean(label: str, limit: int = 60) -> str:
    """One line, bounded: labels come from users and LLMs and go back into prompts."""
    return " ".join(str(label).split())[:limit]


def _percent(area: float) -> str:
    pct = 100.0 * area
    return f"{pct:.1f}%" if pct >= 1 or pct == 0 else f"{pct:.2f}%"


def _object_line(o: SceneObject, width: int, height: int) -> str:
    if o.area > 0:
        size = f"{_percent(o.area)} of image"
    else:  # a detection without mask pixels: its box is all we know about its size
        box_area = max(0.0, o.box[2] - o.box[0]) * max(0.0, o.box[3] - o.box[1])
        size = f"box {_percent(box_area / (width * height))} of image, no mask"
    parts = [f"#{o.id} {_clean(o.label)} (score {o.score:.2f}) {o.position[0]}-{o.position[1]}", size]
    if o.size_rank is not None:
        parts.append(f"size rank {o.size_rank}")
    if o.depth is not None:
        parts.append(f"depth {o.depth:.2f}")
    if o.parent is not None:
        parts.append(f"part of #{o.parent}")
    parts += [f"{_clean(k, 30)}={_clean(v, 60)}" for k, v in sorted(o.attributes.items())]
    return ", ".join(parts)


def _relation_lines(scene: Scene) -> list[str]:
    by_subject: dict[int, dict[str, list[int]]] = {}
    for r in scene.relations or []:
        by_subject.setdefault(r.subject, {}).setdefault(r.predicate, []).append(r.object)
    labels = {o.id: _clean(o.label) for o in scene.objects}
    rank = {p: k for k, p in enumerate(PREDICATES)}
    lines = []
    for subject in sorted(by_subject):
        groups = sorted(by_subject[subject].items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        text = "; ".join(f"{p} " + ", ".join(f"#{i}" for i in sorted(ids)) for p, ids in groups)
        lines.append(f"#{subject} {labels.get(subject, '?')}: {text}")
    return lines


def scene_to_text(scene: Scene) -> str:
    """Compact description for an LLM: one line per object, relations grouped per subject."""
    n = len(scene.objects)
    head = f"Image {scene.width}x{scene.height} pixels, {n} object{'s' if n != 1 else ''}."
    if not n:
        return head
    lines = [head, "Objects (position in thirds of the image; depth 1 = nearest):"]
    lines += [_object_line(o, scene.width, scene.height) for o in sorted(scene.objects, key=lambda o: o.id)]
    if scene.relations is None:
        lines.append("Relations: not computed yet.")
    elif not scene.relations:
        lines.append("Relations: none.")
    else:
        lines.append("Relations:")
        lines += _relation_lines(scene)
    return "\n".join(lines)


# ---------------------------------------------------------------- JSON writer

def _object_to_dict(o: SceneObject) -> dict:
    return {
        "id": int(o.id), "label": str(o.label), "score": float(o.score),
        "box": [float(v) for v in o.box], "mask": rle_encode(o.mask),
        "area": float(o.area), "centroid": [float(v) for v in o.centroid],
        "position": [str(v) for v in o.position],
        "depth": None if o.depth is None else float(o.depth),
        "parent": None if o.parent is None else int(o.parent),
        "size_rank": None if o.size_rank is None else int(o.size_rank),
        "attributes": {str(k): str(v) for k, v in o.attributes.items()},
    }


def scene_to_dict(scene: Scene) -> dict:
    relations = None if scene.relations is None else [
        {"subject": int(r.subject), "predicate": r.predicate, "object": int(r.object)}
        for r in scene.relations]
    return {"format": FORMAT, "width": int(scene.width), "height": int(scene.height),
            "objects": [_object_to_dict(o) for o in scene.objects], "relations": relations}


def scene_to_json(scene: Scene, indent: int | None = None) -> str:
    return json.dumps(scene_to_dict(scene), indent=indent, allow_nan=False)


# ---------------------------------------------------------------- JSON reader (untrusted input)

def _fail(where: str, problem: str) -> InputError:
    return InputError(f"invalid scene JSON at {where}: {problem}")


def _int(v: object, where: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise _fail(where, f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _fail(where, f"{v} is out of range {lo}..{hi}")
    return v


def _num(v: object, where: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise _fail(where, f"expected a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise _fail(where, f"expected a finite number, got {v}")
    return float(v)


def _str(v: object, where: str, limit: int = MAX_LABEL) -> str:
    if not isinstance(v, str):
        raise _fail(where, f"expected a string, got {type(v).__name__}")
    if len(v) > limit:
        raise _fail(where, f"string is longer than {limit} characters")
    return v


def _numbers(v: object, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(v, list) or len(v) != n:
        raise _fail(where, f"expected a list of {n} numbers")
    return tuple(_num(x, f"{where}[{k}]") for k, x in enumerate(v))


def _dict(v: object, where: str) -> dict:
    if not isinstance(v, dict):
        raise _fail(where, f"expected an object, got {type(v).__name__}")
    return v


def _object_from_dict(d: object, where: str, width: int, height: int) -> SceneObject:
    d = _dict(d, where)
    for key in ("id", "label", "score", "box", "mask"):
        if key not in d:
            raise _fail(where, f"missing field '{key}'")
    mask_d = d["mask"]
    if isinstance(mask_d, dict) and mask_d.get("size") != [height, width]:
        raise _fail(f"{where}.mask", f"size {mask_d.get('size')!r:.40} does not match the scene "
                                     f"(expected [height, width] = [{height}, {width}])")
    try:
        mask = rle_decode(mask_d)
    except InputError as e:
        raise _fail(f"{where}.mask", str(e)) from None
    # a box is clipped to the image and ordered, as build_scene does with a detector's boxes
    box = _box(_numbers(d["box"], 4, f"{where}.box"), width, height)
    o = SceneObject(id=_int(d["id"], f"{where}.id", 0, 2**31 - 1), label=_str(d["label"], f"{where}.label"),
                    score=_num(d["score"], f"{where}.score"), box=box, mask=mask)
    o.area = _num(d["area"], f"{where}.area") if "area" in d else area_fraction(mask)
    if not 0.0 <= o.area <= 1.0:
        raise _fail(f"{where}.area", f"{o.area} is not a fraction in 0..1")
    if "centroid" in d:
        o.centroid = _numbers(d["centroid"], 2, f"{where}.centroid")
        if not (0 <= o.centroid[0] <= width and 0 <= o.centroid[1] <= height):
            raise _fail(f"{where}.centroid", f"{list(o.centroid)!r:.60} lies outside the {width}x{height} image")
    else:
        o.centroid = mask_centroid(mask) or ((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2)
    if "position" in d:
        pos = d["position"]
        if not (isinstance(pos, list) and len(pos) == 2 and pos[0] in HORIZONTAL and pos[1] in VERTICAL):
            raise _fail(f"{where}.position", f"expected [{'|'.join(HORIZONTAL)}, {'|'.join(VERTICAL)}]")
        o.position = (pos[0], pos[1])
    else:
        o.position = position_words(*o.centroid, width, height)
    if d.get("depth") is not None:
        o.depth = _num(d["depth"], f"{where}.depth")
    if d.get("parent") is not None:
        o.parent = _int(d["parent"], f"{where}.parent", 0, 2**31 - 1)
    if d.get("size_rank") is not None:
        o.size_rank = _int(d["size_rank"], f"{where}.size_rank", 1, MAX_OBJECTS)
    attributes = _dict(d.get("attributes", {}), f"{where}.attributes")
    o.attributes = {_str(k, f"{where}.attributes key"): _str(v, f"{where}.attributes[{k!r:.30}]")
                    for k, v in attributes.items()}
    return o


def _relations_from_list(v: object, ids: set[int]) -> list[Relation] | None:
    if v is None:
        return None
    if not isinstance(v, list):
        raise _fail("relations", "expected a list or null")
    out = []
    for k, r in enumerate(v):
        where = f"relations[{k}]"
        r = _dict(r, where)
        for key in ("subject", "predicate", "object"):
            if key not in r:
                raise _fail(where, f"missing field '{key}'")
        predicate = _str(r["predicate"], f"{where}.predicate")
        if predicate not in PREDICATES:
            raise _fail(f"{where}.predicate",
                        f"unknown relation {predicate!r:.40}; known: {', '.join(PREDICATES)}")
        subject, obj = (_int(r[key], f"{where}.{key}", 0, 2**31 - 1) for key in ("subject", "object"))
        for key, i in (("subject", subject), ("object", obj)):
            if i not in ids:
                raise _fail(f"{where}.{key}", f"no object with id {i} in the scene")
        out.append(Relation(subject, predicate, obj))
    return out


def scene_from_dict(d: dict) -> Scene:
    """Validate and load a scene dict (as written by ``scene_to_dict``); InputError if malformed."""
    d = _dict(d, "top level")
    if d.get("format") != FORMAT:
        raise _fail("format", f"expected \"{FORMAT}\", got {d.get('format')!r:.40}")
    for key in ("width", "height", "objects"):
        if key not in d:
            raise _fail("top level", f"missing field '{key}'")
    width = _int(d["width"], "width", 1, MAX_SIDE)
    height = _int(d["height"], "height", 1, MAX_SIDE)
    raw = d["objects"]
    if not isinstance(raw, list):
        raise _fail("objects", "expected a list")
    if len(raw) > MAX_OBJECTS:
        raise _fail("objects", f"{len(raw)} objects; at most {MAX_OBJECTS} are supported")
    if len(raw) * width * height > MAX_MASK_PIXELS:
        raise _fail("objects", f"{len(raw)} masks of {width}x{height} pixels are too large to hold in memory "
                               f"({len(raw) * width * height / 2**30:.1f} GiB; at most "
                               f"{MAX_MASK_PIXELS / 2**30:.0f} GiB of mask pixels): use a smaller image or "
                               "fewer objects")
    objects = [_object_from_dict(o, f"objects[{k}]", width, height) for k, o in enumerate(raw)]
    ids = [o.id for o in objects]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise _fail("objects", f"duplicate object ids {duplicates}")
    for k, o in enumerate(objects):
        if o.parent is not None and o.parent not in ids:
            raise _fail(f"objects[{k}].parent", f"no object with id {o.parent} in the scene")
    relations = _relations_from_list(d.get("relations"), set(ids))
    return Scene(width=width, height=height, objects=objects, relations=relations)


def _reject_constant(name: str) -> None:
    raise InputError(f"invalid scene JSON: {name} is not a number JSON allows")


def scene_from_json(text: str | bytes) -> Scene:
    try:
        d = json.loads(text, parse_constant=_reject_constant)
    except InputError:
        raise
    except (ValueError, RecursionError) as e:  # also UnicodeDecodeError, and integers of > 4300 digits
        raise InputError(f"invalid scene JSON: {str(e)[:300] or type(e).__name__}") from None
    except TypeError:
        raise InputError(f"scene JSON must be text, got {type(text).__name__}") from None
    return scene_from_dict(d)


# ---------------------------------------------------------------- preview image

TINT = 0.45  # mask colour weight: the photo stays recognisable under it


def object_color(object_id: int) -> tuple[int, int, int]:
    """Distinct, stable colour per id: hues spaced by the golden ratio."""
    hue = (object_id * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError, AttributeError):
        return ImageFont.load_default()


def _erode(m: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour erosion; outside the crop counts as background."""
    e = m.copy()
    for _ in range(steps):
        s = e.copy()
        s[1:] &= e[:-1]
        s[:-1] &= e[1:]
        s[:, 1:] &= e[:, :-1]
        s[:, :-1] &= e[:, 1:]
        s[[0, -1], :] = False
        s[:, [0, -1]] = False
        e = s
    return e


def _paint_mask(img: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], line: int) -> None:
    box = mask_box(mask)
    if box is None:
        return
    x0, y0, x1, y1 = (int(v) for v in box)
    view, m = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]  # work in the crop: big images, small objects
    c = np.array(color, dtype=np.float32)
    view[m] = (view[m] * (1 - TINT) + c * TINT).astype(np.uint8)
    view[m & ~_erode(m, line)] = color


def _draw_tag(draw: ImageDraw.ImageDraw, o: SceneObject, color: tuple[int, int, int],
              font: ImageFont.ImageFont, size: tuple[int, int]) -> None:
    text = f"#{o.id} {_clean(o.label, 40)} {o.score:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, (bottom - top) // 5)
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    w, h = size
    x = max(0, min(int(o.box[0]), w - tw))
    y = int(o.box[1]) - th if o.box[1] >= th else int(o.box[1])  # above the box when it fits
    y = max(0, min(y, h - th))
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=color)
    draw.text((x + pad - left, y + pad - top), text, font=font,
              fill=(0, 0, 0) if luma > 140 else (255, 255, 255))


def render_preview(image: np.ndarray, scene: Scene) -> np.ndarray:
    """RGB uint8 overlay: tinted masks with outlines, boxes and "#id label score" tags."""
    img = np.array(to_rgb_uint8(image), copy=True)  # to_rgb_uint8 may hand back the input itself
    h, w = img.shape[:2]
    check_same_size(scene, img)
    if not scene.objects:
        return img
    short = min(w, h)
    line = max(1, round(short / 400))
    objects = sorted(scene.objects, key=lambda o: (-o.area, o.id))  # small masks stay visible on top
    for o in objects:
        _paint_mask(img, check_mask(o.mask, h, w), object_color(o.id), line)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for o in objects:
        x0, y0, x1, y1 = o.box
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=object_color(o.id), width=line)
    font = _font(max(10, round(short / 30)))
    for o in sorted(scene.objects, key=lambda o: o.id):
        _draw_tag(draw, o, object_color(o.id), font, (w, h))
    return np.array(pil)
