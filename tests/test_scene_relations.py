"""Geometric relations on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.scene import PREDICATES, Relation, compute_relations, make_object
from cielr_core.scene.masks import mask_box

W, H = 400, 300


def rect(x0: int, y0: int, x1: int, y1: int, w: int = W, h: int = H) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def obj(i: int, mask: np.ndarray, label: str = "thing", depth: float | None = None):
    o = make_object(i, label, 0.9, mask_box(mask) or (0, 0, 1, 1), mask)
    o.depth = depth
    return o


def rels(objects, w: int = W, h: int = H) -> set[tuple[int, str, int]]:
    return {(r.subject, r.predicate, r.object) for r in compute_relations(objects, w, h)}


def about(result: set, a: int, b: int) -> set[str]:
    """Predicates with a as subject and b as object."""
    return {p for s, p, o in result if (s, o) == (a, b)}


def test_side_by_side_boxes():
    r = rels([obj(1, rect(20, 100, 120, 200)), obj(2, rect(200, 100, 300, 200))])
    assert about(r, 1, 2) == {"left_of", "nearest"}
    assert about(r, 2, 1) == {"right_of", "nearest"}


def test_stacked_boxes_are_above_below_but_not_left_right():
    r = rels([obj(1, rect(100, 10, 200, 80)), obj(2, rect(102, 150, 198, 250))])
    assert about(r, 1, 2) == {"above", "nearest"}
    assert about(r, 2, 1) == {"below", "nearest"}


def test_cup_on_table():
    table = obj(1, rect(100, 180, 350, 290), "table")
    cup = obj(2, rect(150, 140, 190, 182), "cup")  # its bottom rests on the table top
    r = rels([table, cup])
    assert "on_top_of" in about(r, 2, 1)
    assert "on_top_of" not in about(r, 1, 2)
    assert not about(r, 2, 1) & {"inside", "contains", "left_of", "right_of"}


def test_cup_floating_above_table_is_not_on_top_of():
    table = obj(1, rect(100, 180, 350, 290), "table")
    cup = obj(2, rect(150, 40, 190, 100), "cup")  # 80 px gap
    r = rels([table, cup])
    assert "on_top_of" not in about(r, 2, 1)
    assert "above" in about(r, 2, 1) and "below" in about(r, 1, 2)


def test_cup_on_table_in_perspective():
    """The table top is seen from above: the cup stands inside the table's box, mask touching."""
    table = rect(60, 120, 340, 290)
    table[140:200, 170:210] = False  # SAM leaves the cup out of the table mask
    cup = rect(170, 120, 210, 200)
    r = rels([obj(1, table, "table"), obj(2, cup, "cup")])
    assert "on_top_of" in about(r, 2, 1)


def test_picture_inside_wall():
    wall = obj(1, rect(0, 0, 400, 200), "wall")
    picture = obj(2, rect(150, 40, 250, 120), "picture")
    r = rels([wall, picture])
    assert about(r, 2, 1) == {"inside", "nearest"}
    assert about(r, 1, 2) == {"contains", "nearest"}


def test_overlap_without_containment_goes_both_ways():
    r = rels([obj(1, rect(50, 50, 150, 150)), obj(2, rect(120, 60, 220, 160))])
    assert "overlaps" in about(r, 1, 2) and "overlaps" in about(r, 2, 1)
    assert not (about(r, 1, 2) | about(r, 2, 1)) & {"inside", "contains"}


def test_shared_boundary_pixels_are_not_an_overlap():
    a = rect(50, 50, 150, 150)
    b = rect(149, 50, 250, 150)  # one shared column: 100 of 10000 pixels = 1%
    r = rels([obj(1, a), obj(2, b)])
    assert "overlaps" not in about(r, 1, 2)


def test_depth_in_front_of_and_behind():
    a, b = rect(20, 20, 80, 80), rect(300, 20, 360, 80)
    r = rels([obj(1, a, depth=0.9), obj(2, b, depth=0.3)])
    assert "in_front_of" in about(r, 1, 2) and "behind" in about(r, 2, 1)
    assert "in_front_of" not in about(r, 2, 1)
    close = rels([obj(1, a, depth=0.5), obj(2, b, depth=0.45)])
    assert not {p for _, p, _ in close} & {"in_front_of", "behind"}
    missing = rels([obj(1, a, depth=0.9), obj(2, b)])
    assert not {p for _, p, _ in missing} & {"in_front_of", "behind"}


def test_nearest_one_per_object_and_ties_to_lower_id():
    objects = [obj(1, rect(10, 10, 20, 20)), obj(2, rect(40, 10, 50, 20)),
               obj(3, rect(200, 10, 210, 20)), obj(4, rect(70, 10, 80, 20))]
    r = rels(objects)
    nearest = {(s, o) for s, p, o in r if p == "nearest"}
    # 2 is 30 px from both 1 and 4: the tie goes to 1.
    assert nearest == {(1, 2), (2, 1), (3, 4), (4, 2)}


def test_box_only_objects_use_boxes():
    empty = np.zeros((H, W), bool)
    outer = make_object(1, "shelf", 0.8, (10, 10, 300, 250), empty)
    inner = make_object(2, "book", 0.8, (50, 50, 100, 120), empty)
    r = rels([outer, inner])
    assert "inside" in about(r, 2, 1) and "contains" in about(r, 1, 2)


def test_large_masks_use_the_sampled_path_and_agree():
    w = h = 1024
    yy, xx = np.mgrid[:h, :w]
    wall = (np.abs(xx - 512) < 480) & (np.abs(yy - 512) < 480)
    picture = ((xx - 500) / 300) ** 2 + ((yy - 480) / 250) ** 2 <= 1  # inside the wall
    disc_a = (xx - 300) ** 2 + (yy - 500) ** 2 < 280 ** 2
    disc_b = (xx - 620) ** 2 + (yy - 500) ** 2 < 280 ** 2  # half-overlapping discs
    r = rels([obj(1, wall), obj(2, picture)], w, h)
    assert "inside" in about(r, 2, 1)
    r = rels([obj(1, disc_a), obj(2, disc_b)], w, h)
    assert "overlaps" in about(r, 1, 2)
    assert not (about(r, 1, 2) | about(r, 2, 1)) & {"inside", "contains"}


def test_deterministic_and_independent_of_input_order():
    rng = np.random.default_rng(3)
    objects = []
    for i in range(1, 13):
        x, y = rng.integers(0, W - 60), rng.integers(0, H - 60)
        objects.append(obj(i, rect(x, y, x + rng.integers(5, 60), y + rng.integers(5, 60)),
                           depth=float(rng.random())))
    first = compute_relations(objects, W, H)
    shuffled = compute_relations(list(reversed(objects)), W, H)
    assert first == shuffled
    assert all(isinstance(r, Relation) and r.predicate in PREDICATES for r in first)
    assert len(set(first)) == len(first)  # no duplicates
    keys = [(r.subject, PREDICATES.index(r.predicate), r.object) for r in first]
    assert keys == sorted(keys)


def test_directional_pairs_are_consistent():
    rng = np.random.default_rng(5)
    objects = [obj(i, rect(*(lambda x, y: (x, y, x + 30, y + 30))(*rng.integers(0, 350, 2).tolist())))
               for i in range(1, 15)]
    r = rels(objects)
    inverse = {"left_of": "right_of", "above": "below", "inside": "contains", "in_front_of": "behind",
               "overlaps": "overlaps"}
    for s, p, o in r:
        if p in inverse:
            assert (o, inverse[p], s) in r


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_objects(n):
    objects = [obj(1, rect(10, 10, 50, 50))][:n]
    assert compute_relations(objects, W, H) == []


def test_sampled_counting_agrees_with_exact_counting(monkeypatch):
    import cielr_core.scene.relations as relations

    w = h = 1024
    yy, xx = np.mgrid[:h, :w]
    shapes = [((xx - 300) / 250) ** 2 + ((yy - 300) / 200) ** 2 <= 1,
              ((xx - 330) / 120) ** 2 + ((yy - 320) / 100) ** 2 <= 1,  # inside the first
              (np.abs(xx - 650) < 300) & (np.abs(yy - 600) < 300),  # overlaps the first
              (np.abs(xx - 700) < 200) & (yy > 900)]
    objects = [obj(i + 1, m) for i, m in enumerate(shapes)]
    monkeypatch.setattr(relations, "EXACT_PIXELS", 0)
    sampled = compute_relations(objects, w, h)
    monkeypatch.setattr(relations, "EXACT_PIXELS", 10**9)
    exact = compute_relations(objects, w, h)
    assert sampled == exact
    assert {(r.subject, r.predicate, r.object) for r in exact} >= {
        (2, "inside", 1), (1, "overlaps", 3), (3, "overlaps", 1)}


def test_masks_of_another_size_are_rejected():
    from cielr_core.errors import InputError

    with pytest.raises(InputError, match="mask is 400x300 but the image is 200x100"):
        compute_relations([obj(1, rect(0, 0, 10, 10))], 200, 100)
