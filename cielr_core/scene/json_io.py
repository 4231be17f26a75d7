"""The scene as JSON: the writer, and the reader that validates untrusted files before using them.

Layout ("format": "cielr.scene/1")::

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

import json
import math

from ..errors import InputError
from ..images import MAX_SIDE
from .build import HORIZONTAL, VERTICAL, _box, position_words
from .masks import area_fraction, mask_centroid, rle_decode, rle_encode
from .model import Relation, Scene, SceneObject
from .relations import PREDICATES

FORMAT = "cielr.scene/1"
MAX_OBJECTS = 1000  # a scene file with more is not a photo's scene; refuse before decoding masks
MAX_LABEL = 200
# Masks are decoded into one bool per pixel per object: a few bytes of JSON per object may declare a
# 16384 x 16384 mask, so the declared total is bounded before any mask is decoded (4 GiB of masks).
MAX_MASK_PIXELS = 2**32


# ---------------------------------------------------------------- writer

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


# ---------------------------------------------------------------- reader (untrusted input)

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

