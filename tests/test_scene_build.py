"""Objects from detections, merging, size ranks and depth."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cielr_core.errors import InputError
from cielr_core.scene import Scene, build_scene, make_object, merge_objects, scene_from_detections

W, H = 300, 150


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def two_object_scene() -> Scene:
    masks = np.stack([rect(0, 0, 100, 50), rect(200, 100, 300, 150)])
    return scene_from_detections(W, H, [[0, 0, 100, 50], [200, 100, 300, 150]], [0.9, 0.6],
                                 ["lamp", "chair"], masks)


def test_make_object_measures_the_mask():
    o = make_object(7, "cup", 0.8, (190, 100, 230, 140), rect(200, 110, 220, 130), parent=2)
    assert (o.id, o.label, o.score, o.parent) == (7, "cup", 0.8, 2)
    assert o.area == pytest.approx(400 / (W * H))
    assert o.centroid == pytest.approx((210.0, 120.0))
    assert o.position == ("right", "bottom")
    assert o.box == (190.0, 100.0, 230.0, 140.0)  # the detector's box is kept


@pytest.mark.parametrize("x, y, words", [(10, 10, ("left", "top")), (150, 75, ("center", "middle")),
                                         (299, 149, ("right", "bottom")), (99, 50, ("left", "middle"))])
def test_position_words_are_thirds(x, y, words):
    m = np.zeros((H, W), bool)
    m[y, x] = True
    assert make_object(1, "dot", 1.0, (x, y, x + 1, y + 1), m).position == words


def test_empty_mask_uses_the_box_centre():
    o = make_object(1, "tv", 0.5, (0, 0, 60, 30), np.zeros((H, W), bool))
    assert o.area == 0.0
    assert o.centroid == (30.0, 15.0)
    assert o.position == ("left", "top")


def test_boxes_are_clipped_and_checked():
    o = make_object(1, "x", 0.5, (-20, -5, 400, 90), rect(0, 0, 10, 10))
    assert o.box == (0.0, 0.0, 300.0, 90.0)
    with pytest.raises(InputError, match="4 finite numbers"):
        make_object(1, "x", 0.5, (0, 0, float("nan"), 5), rect(0, 0, 10, 10))
    with pytest.raises(InputError, match="finite"):
        make_object(1, "x", float("inf"), (0, 0, 5, 5), rect(0, 0, 10, 10))


def test_scene_from_detections_ids_and_validation():
    scene = scene_from_detections(W, H, np.array([[0, 0, 10, 10], [5, 5, 50, 50]]), np.array([0.5, 0.7]),
                                  ["a", "b"], np.stack([rect(0, 0, 10, 10), rect(5, 5, 50, 50)]),
                                  start_id=4, parent=1)
    assert [o.id for o in scene.objects] == [4, 5]
    assert [o.parent for o in scene.objects] == [1, 1]
    assert scene.relations is None and scene.next_id == 6
    with pytest.raises(InputError, match="mask is 150x300 but the image is 300x150"):
        scene_from_detections(W, H, [[0, 0, 1, 1]], [0.5], ["a"], np.zeros((1, W, H), bool))
    with pytest.raises(InputError, match="N x H x W"):
        scene_from_detections(W, H, [[0, 0, 1, 1]], [0.5], ["a"], np.zeros((2, H, W), bool))
    with pytest.raises(InputError, match="disagree"):
        scene_from_detections(W, H, [[0, 0, 1, 1]], [0.5, 0.6], ["a"], np.zeros((1, H, W), bool))
    with pytest.raises(InputError, match="N x 4"):
        scene_from_detections(W, H, [[0, 0, 1]], [0.5], ["a"], np.zeros((1, H, W), bool))
    with pytest.raises(InputError, match="out of range"):
        scene_from_detections(0, H, [], [], [], np.zeros((0, H, W), bool))


def test_scene_from_no_detections_is_valid():
    scene = scene_from_detections(W, H, np.zeros((0, 4)), np.zeros(0), [], np.zeros((0, H, W), bool))
    assert scene.objects == [] and scene.width == W and scene.height == H and scene.next_id == 1
    built = build_scene(scene, depth=np.ones((H, W), np.float32))
    assert built.relations == [] and built.objects == []
    assert merge_objects(scene, []).objects == []


def test_merge_objects_appends_fresh_ids_without_touching_the_input():
    scene = build_scene(two_object_scene())
    new = scene_from_detections(W, H, [[100, 50, 150, 100]], [0.4], ["book"],
                                rect(100, 50, 150, 100)[None], start_id=1, parent=1)
    merged = merge_objects(scene, new.objects)
    assert [o.id for o in merged.objects] == [1, 2, 3]
    assert [o.label for o in merged.objects] == ["lamp", "chair", "book"]
    assert merged.objects[2].parent == 1
    assert merged.relations is None
    assert len(scene.objects) == 2 and scene.relations is not None
    assert new.objects[0].id == 1  # the merged copy got the new id, not the original


def test_build_scene_does_not_mutate_its_input():
    scene = two_object_scene()
    scene.objects[0].attributes["colour"] = "red"
    before = copy.deepcopy(scene)
    built = build_scene(scene, depth=np.linspace(0, 1, W * H, dtype=np.float32).reshape(H, W))
    assert built is not scene and built.objects is not scene.objects
    assert all(a is not b for a, b in zip(built.objects, scene.objects))
    assert scene.relations is None
    for a, b in zip(scene.objects, before.objects):
        assert (a.depth, a.size_rank, a.attributes, a.box, a.area) == (b.depth, b.size_rank, b.attributes,
                                                                       b.box, b.area)
        assert np.array_equal(a.mask, b.mask)
    built.objects[0].attributes["colour"] = "blue"
    assert scene.objects[0].attributes["colour"] == "red"
    assert built.relations and all(o.depth is not None for o in built.objects)


def test_size_rank_one_is_largest():
    masks = np.stack([rect(0, 0, 10, 10), rect(50, 50, 150, 150), rect(200, 0, 240, 40)])
    scene = scene_from_detections(W, H, [[0, 0, 10, 10], [50, 50, 150, 150], [200, 0, 240, 40]],
                                  [0.5] * 3, ["s", "l", "m"], masks)
    assert [o.size_rank for o in build_scene(scene).objects] == [3, 1, 2]


def test_depth_is_the_median_under_the_mask():
    depth = np.zeros((H, W), np.float32)
    depth[:, 150:] = 0.8
    depth[0:10, 0:5] = 1.0  # a minority of the lamp's pixels: the median ignores them
    built = build_scene(two_object_scene(), depth=depth)
    lamp, chair = built.objects
    assert lamp.depth == pytest.approx(0.0) and chair.depth == pytest.approx(0.8)
    assert {(r.subject, r.predicate, r.object) for r in built.relations} >= {(2, "in_front_of", 1),
                                                                             (1, "behind", 2)}


def test_depth_formats_channels_and_ranges():
    scene = two_object_scene()
    u8 = np.zeros((H, W, 3), np.uint8)
    u8[:, 150:, 0] = 255
    u8[:, :, 1:] = 77  # other channels are ignored: the first one is the depth
    assert [o.depth for o in build_scene(scene, u8).objects] == pytest.approx([0.0, 1.0])
    raw = np.full((H, W), 2.0, np.float32)  # raw inverse depth: normalised by min and max
    raw[:, 150:] = 12.0
    assert [o.depth for o in build_scene(scene, raw).objects] == pytest.approx([0.0, 1.0])
    flat = np.full((H, W), 0.25, np.float64)  # already in [0, 1]: kept as it is
    assert [o.depth for o in build_scene(scene, flat).objects] == pytest.approx([0.25, 0.25])


def test_depth_of_another_size_is_resized():
    small = np.zeros((15, 30), np.float32)
    small[:, 15:] = 0.6  # right half
    lamp, chair = build_scene(two_object_scene(), depth=small).objects
    assert lamp.depth == pytest.approx(0.0, abs=1e-6) and chair.depth == pytest.approx(0.6, abs=1e-6)


def test_depth_of_a_box_only_object_uses_its_box():
    empty = make_object(1, "tv", 0.5, (200, 0, 300, 50), np.zeros((H, W), bool))
    depth = np.zeros((H, W), np.float32)
    depth[:50, 200:] = 0.7
    built = build_scene(Scene(W, H, [empty]), depth=depth)
    assert built.objects[0].depth == pytest.approx(0.7)


def test_build_scene_rejects_bad_input():
    scene = two_object_scene()
    with pytest.raises(InputError, match="NaN"):
        build_scene(scene, depth=np.full((H, W), np.nan, np.float32))
    with pytest.raises(InputError, match="depth map"):
        build_scene(scene, depth=np.zeros((2, H, W, 1)))
    dup = Scene(W, H, [scene.objects[0], scene.objects[0]])
    with pytest.raises(InputError, match="unique"):
        build_scene(dup)
    wrong = Scene(W, H, [make_object(1, "x", 0.5, (0, 0, 5, 5), np.zeros((10, 10), bool))])
    with pytest.raises(InputError, match="mask is 10x10 but the image is 300x150"):
        build_scene(wrong)
