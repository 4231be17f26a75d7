"""Spatial relations from geometry alone, so the LLM reads facts instead of guessing them.

Rules (W, H = image width and height; boxes and centroids come from the mask when it has
pixels, from the object's box otherwise):

- ``inside`` / ``contains``: at least 90% of A's mask lies in B's mask and A is the smaller one
  (boxes instead of masks when either mask is empty, here and for overlaps). Containment replaces every other
  geometric relation of that pair: "left of the wall" says nothing about a picture on it.
- ``overlaps`` (both directions): the masks share more than 1% of the smaller mask, without
  containment. The 1% keeps the boundary pixels two SAM masks share from counting.
- ``left_of`` / ``right_of``: A's centroid is left of B's by more than 2% of W, and each
  centroid lies outside the other's horizontal extent (so a cup standing on the left end of a
  table is not "left of" it). ``above`` / ``below``: the same along y with H.
- ``on_top_of``: A rests on B: A's centroid is above B's and within B's horizontal extent,
  A's bottom edge lies between 2% of H above B's top edge and B's vertical middle, and (when
  both have masks) B's mask has pixels within that tolerance of A's bottom edge under A.
- ``in_front_of`` / ``behind``: both objects have a depth and differ by more than 0.1
  (larger depth = nearer).
- ``nearest``: one per object, its closest other object by centroid distance (ties: lower id).

Mask overlaps are counted exactly inside the intersection of the two tight boxes when that is
small (at most 256 x 256 pixels), and otherwise estimated from masks sampled on a grid of at
most 256 points on the long side; all pairs are counted with one matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .masks import check_mask, mask_geometry
from .model import Box, Relation, SceneObject

PREDICATES = ("inside", "contains", "on_top_of", "overlaps", "left_of", "right_of", "above", "below",
              "in_front_of", "behind", "nearest")
CONTAIN_FRACTION = 0.9
OVERLAP_FRACTION = 0.01
SIDE_MARGIN = 0.02
TOUCH_TOLERANCE = 0.02
DEPTH_GAP = 0.1
GRID = 256
EXACT_PIXELS = GRID * GRID


@dataclass
class _Geom:
    id: int
    box: Box  # tight mask box, or the object's box when the mask is empty
    cx: float
    cy: float
    count: int  # mask pixels (0: box-only object)
    mask: np.ndarray
    depth: float | None


def _geometry(o: SceneObject, width: int, height: int) -> _Geom:
    mask = check_mask(o.mask, height, width)
    geometry = mask_geometry(mask)  # one whole-mask pass: this is most of the cost for large photos
    if geometry is None:
        box = tuple(float(v) for v in o.box)
        return _Geom(o.id, box, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0, mask, o.depth)
    box, count, (cx, cy) = geometry
    return _Geom(o.id, box, cx, cy, count, mask, o.depth)


def _box_intersection(a: Box, b: Box) -> Box | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _box_area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


class _Overlaps:
    """Pixel counts of mask intersections, exact for small regions, sampled for large ones."""

    def __init__(self, geoms: list[_Geom], width: int, height: int):
        self.geoms = geoms
        self.step = max(1, math.ceil(max(width, height) / GRID))
        self._gram: np.ndarray | None = None
        self._sampled: np.ndarray | None = None

    def _sample(self) -> None:
        s, off = self.step, self.step // 2
        rows = [g.mask[off::s, off::s].reshape(-1) for g in self.geoms]
        m = np.stack(rows).astype(np.float32)
        self._gram = m @ m.T  # exact integers: at most GRID * GRID < 2**24 samples
        self._sampled = np.diag(self._gram).copy()

    def fractions(self, i: int, j: int) -> tuple[float, float]:
        """(|A & B| / |A|, |A & B| / |B|) for masked objects i and j."""
        a, b = self.geoms[i], self.geoms[j]
        region = _box_intersection(a.box, b.box)
        if region is None:
            return 0.0, 0.0
        if _box_area(region) > EXACT_PIXELS:
            if self._gram is None:
                self._sample()
            na, nb = self._sampled[i], self._sampled[j]
            if na > 0 and nb > 0:
                inter = float(self._gram[i, j])
                return inter / na, inter / nb
        x0, y0, x1, y1 = (int(v) for v in region)
        inter = float(np.count_nonzero(a.mask[y0:y1, x0:x1] & b.mask[y0:y1, x0:x1]))
        return inter / a.count, inter / b.count


def _box_fractions(a: _Geom, b: _Geom) -> tuple[float, float]:
    region = _box_intersection(a.box, b.box)
    if region is None:
        return 0.0, 0.0
    inter = _box_area(region)
    return inter / max(_box_area(a.box), 1e-9), inter / max(_box_area(b.box), 1e-9)


def _size(g: _Geom) -> float:
    return float(g.count) if g.count else _box_area(g.box)


def _containment(a: _Geom, b: _Geom, fa: float, fb: float) -> list[tuple[int, str, int]]:
    if fa >= CONTAIN_FRACTION and _size(a) < _size(b):
        return [(a.id, "inside", b.id), (b.id, "contains", a.id)]
    if fb >= CONTAIN_FRACTION and _size(b) < _size(a):
        return [(b.id, "inside", a.id), (a.id, "contains", b.id)]
    return []


def _sides(a: _Geom, b: _Geom, width: int, height: int) -> list[tuple[int, str, int]]:
    out = []
    # left_of: centroids apart by a margin and each centroid outside the other's x extent.
    for first, second in ((a, b), (b, a)):
        if (first.cx < second.cx - SIDE_MARGIN * width
                and first.cx < second.box[0] and second.cx > first.box[2]):
            out += [(first.id, "left_of", second.id), (second.id, "right_of", first.id)]
        if (first.cy < second.cy - SIDE_MARGIN * height
                and first.cy < second.box[1] and second.cy > first.box[3]):
            out += [(first.id, "above", second.id), (second.id, "below", first.id)]
    return out


def _rests_on(a: _Geom, b: _Geom, height: int) -> bool:
    """A on top of B: A above, horizontally supported by B, its bottom edge touching B's top."""
    tol = max(2.0, TOUCH_TOLERANCE * height)
    bx0, by0, bx1, by1 = b.box
    bottom = a.box[3]
    if not (bx0 <= a.cx <= bx1 and a.cy < b.cy):
        return False
    if not (by0 - tol <= bottom <= by0 + 0.5 * (by1 - by0)):
        return False
    if a.count == 0 or b.count == 0:
        return True
    y0, y1 = max(0, int(bottom - tol)), min(b.mask.shape[0], int(math.ceil(bottom + tol)))
    x0, x1 = int(a.box[0]), int(math.ceil(a.box[2]))
    return bool(b.mask[y0:y1, x0:x1].any())


def _nearest(geoms: list[_Geom]) -> list[tuple[int, str, int]]:
    if len(geoms) < 2:
        return []
    c = np.array([(g.cx, g.cy) for g in geoms])
    d = np.hypot(c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1])
    np.fill_diagonal(d, np.inf)
    # geoms are sorted by id and argmin returns the first minimum: ties go to the lower id.
    return [(g.id, "nearest", geoms[int(k)].id) for g, k in zip(geoms, d.argmin(axis=1))]


def compute_relations(objects: Sequence[SceneObject], width: int, height: int) -> list[Relation]:
    """All geometric relations between ``objects``, sorted by subject, predicate, object."""
    geoms = sorted((_geometry(o, width, height) for o in objects), key=lambda g: g.id)
    overlaps = _Overlaps(geoms, width, height)
    triples: list[tuple[int, str, int]] = []
    for i, a in enumerate(geoms):
        for j in range(i + 1, len(geoms)):
            b = geoms[j]
            if a.count and b.count:
                fa, fb = overlaps.fractions(i, j)
            else:
                fa, fb = _box_fractions(a, b)
            contained = _containment(a, b, fa, fb)
            triples += contained
            if a.depth is not None and b.depth is not None and abs(a.depth - b.depth) > DEPTH_GAP:
                near, far = (a, b) if a.depth > b.depth else (b, a)
                triples += [(near.id, "in_front_of", far.id), (far.id, "behind", near.id)]
            if contained:
                continue
            if max(fa, fb) > OVERLAP_FRACTION:  # the smaller mask has the larger fraction
                triples += [(a.id, "overlaps", b.id), (b.id, "overlaps", a.id)]
            if _rests_on(a, b, height):
                triples.append((a.id, "on_top_of", b.id))
            elif _rests_on(b, a, height):
                triples.append((b.id, "on_top_of", a.id))
            triples += _sides(a, b, width, height)
    triples += _nearest(geoms)
    rank = {p: k for k, p in enumerate(PREDICATES)}
    triples.sort(key=lambda t: (t[0], rank[t[1]], t[2]))
    return [Relation(s, p, o) for s, p, o in triples]
