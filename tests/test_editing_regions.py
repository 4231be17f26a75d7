"""Action masks: target unions, add-placement regions, growing and feathering."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.editing import action_mask, feather, grow, placement_mask
from cielr_core.editing.regions import Borders
from cielr_core.plan import Action
from cielr_core.scene import make_object
from cielr_core.scene.model import Scene


def _scene(width: int = 80, height: int = 60) -> Scene:
    a = np.zeros((height, width), bool)
    a[20:40, 30:50] = True  # a box-shaped "table" in the middle
    b = np.zeros((height, width), bool)
    b[5:10, 0:4] = True  # touches the left border
    return Scene(width, height, [make_object(1, "table", 0.9, (30, 20, 50, 40), a),
                                 make_object(2, "cup", 0.8, (0, 5, 4, 10), b)])


def test_targets_union():
    scene = _scene()
    m = action_mask(Action(op="remove", targets=[1, 2]), scene)
    assert m.dtype == bool and m.shape == (60, 80)
    assert np.array_equal(m, scene.get(1).mask | scene.get(2).mask)


@pytest.mark.parametrize("placement,check", [
    ("on_top_of", lambda ys, xs: ys.max() < 24 and ys.min() < 20),  # sits on the top edge, reaching above it
    ("above", lambda ys, xs: ys.max() < 20),
    ("below", lambda ys, xs: ys.min() >= 40),
    ("left_of", lambda ys, xs: xs.max() < 30),
    ("right_of", lambda ys, xs: xs.min() >= 50),
    ("in_front_of", lambda ys, xs: ys.max() >= 40 and ys.min() < 40),
    ("inside", lambda ys, xs: ys.min() >= 20 and ys.max() < 40 and xs.min() >= 30 and xs.max() < 50),
    ("near", lambda ys, xs: xs.max() < 30 or xs.min() >= 50),
])
def test_placement_regions(placement, check):
    scene = _scene()
    m = action_mask(Action(op="add", anchor=1, placement=placement, prompt="a vase"), scene)
    ys, xs = np.nonzero(m)
    assert ys.size > 0, placement
    assert check(ys, xs), (placement, ys.min(), ys.max(), xs.min(), xs.max())


def test_behind_leaves_the_anchor_out():
    scene = _scene()
    m = placement_mask(scene, 1, "behind")
    assert m.any() and not (m & scene.get(1).mask).any()


def test_placement_is_clipped_to_the_image():
    scene = _scene()
    m = placement_mask(scene, 2, "left_of")  # the cup touches the left border: nothing fits there
    assert m.shape == (60, 80) and not m.any()
    m = placement_mask(scene, 2, "above")
    assert m.shape == (60, 80)  # partly outside: clipped, not wrapped or failed
    assert not m[30:].any()


def test_grow_covers_the_mask_and_stays_within_radius():
    rng = np.random.default_rng(0)
    m = rng.random((40, 50)) > 0.97
    g = grow(m, 3)
    assert (g | ~m).all() and g.sum() > m.sum()  # superset, larger
    ys, xs = np.nonzero(m)
    for y, x in zip(*np.nonzero(g)):
        assert (np.maximum(abs(ys - y), abs(xs - x)) <= 3).any()  # no pixel beyond the radius
    assert np.array_equal(grow(m, 0), m)
    assert not grow(np.zeros((5, 5), bool), 4).any()


def test_grow_does_not_modify_its_input():
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    before = m.copy()
    grow(m, 2)
    feather(m, 2)
    assert np.array_equal(m, before)


def test_feather_is_inside_the_grown_mask_and_ramps():
    g = np.zeros((40, 40), bool)
    g[5:35, 5:35] = True
    w = feather(g, 6, Borders(False, False, False, False))
    assert w.dtype == np.float32
    assert (w[~g] == 0).all()  # nothing outside the grown mask
    assert (w[g] > 0).all() and w[20, 20] == 1.0
    row = w[20, 5:20]  # from the edge inwards: non-decreasing, small at the edge
    assert (np.diff(row) >= 0).all() and row[0] < 0.1 and row[-1] == 1.0
    assert np.array_equal(feather(g, 0), g.astype(np.float32))


def test_feather_keeps_full_weight_at_the_image_border():
    g = np.zeros((20, 20), bool)
    g[:, :8] = True  # touches left, top and bottom of the image
    w = feather(g, 4, Borders(left=True, top=True, right=False, bottom=True))
    assert (w[:, :3] == 1.0).all()  # not faded towards the image border
    assert w[10, 7] < 0.15  # faded towards the interior edge (smoothstep(1/5) = 0.104)
    full = feather(np.ones((7, 9), bool), 5)
    assert (full == 1.0).all()


def test_one_pixel_mask():
    g = np.zeros((9, 9), bool)
    g[4, 4] = True
    w = feather(g, 3, Borders(False, False, False, False))
    assert w[4, 4] > 0 and w.sum() == w[4, 4]
