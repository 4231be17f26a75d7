"""Perception end to end with tiny real-architecture models on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.errors import InputError
from cielr_core.perception import detect_objects, perceive
from cielr_core.scene import build_scene, render_preview, scene_from_json, scene_to_json, scene_to_text
from tests.conftest import load_photo


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_sam_path):
    from cielr_core.perception import load_sam

    return load_sam(tiny_sam_path)


@pytest.mark.parametrize("labels", ["", "  ", ", . ;", "?!"])
def test_empty_or_punctuation_labels_are_a_clear_error(labels, photo, tiny_detector, tiny_segmenter):
    with pytest.raises(InputError, match="no object names"):
        perceive(photo, tiny_detector, tiny_segmenter, labels)


def assert_valid_scene(scene, h, w):
    assert (scene.width, scene.height) == (w, h)
    assert [o.id for o in scene.objects] == list(range(1, len(scene.objects) + 1))
    for o in scene.objects:
        assert o.mask.shape == (h, w) and o.mask.dtype == bool
        x0, y0, x1, y1 = o.box
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h


@pytest.mark.parametrize("index", [0, 4, 11])
def test_perceive_real_photos(index, tiny_detector, tiny_segmenter):
    image = load_photo(index)
    before = image.copy()
    scene = perceive(image, tiny_detector, tiny_segmenter, "tv, speaker, table", box_threshold=0.0,
                     text_threshold=0.0)
    assert np.array_equal(image, before)
    h, w = image.shape[:2]
    assert len(scene.objects) > 0 and scene.relations is None
    assert_valid_scene(scene, h, w)
    assert {o.label for o in scene.objects} <= {"tv", "speaker", "table"}
    built = build_scene(scene)
    assert scene_from_json(scene_to_json(built)).objects[0].mask.sum() == built.objects[0].mask.sum()


def test_nothing_detected_gives_a_valid_empty_scene_downstream(photo, tiny_detector, tiny_segmenter):
    scene = perceive(photo, tiny_detector, tiny_segmenter, "tv", box_threshold=1.0, text_threshold=1.0)
    assert scene.objects == [] and (scene.height, scene.width) == photo.shape[:2]
    built = build_scene(scene)
    assert built.relations == []
    assert "no objects" in scene_to_text(built).lower() or "0 objects" in scene_to_text(built).lower()
    assert np.array_equal(render_preview(photo, built), photo)
    assert scene_from_json(scene_to_json(built)).objects == []


@pytest.mark.parametrize("make", [
    lambda p: np.concatenate([p, np.full(p.shape[:2] + (1,), 255, np.uint8)], axis=2),  # RGBA
    lambda p: p.mean(axis=2).astype(np.uint8),  # greyscale
    lambda p: p.astype(np.uint16) * 257,  # 16-bit
    lambda p: p[:16, :16],  # 16 x 16
])
def test_image_formats(make, photo, tiny_detector, tiny_segmenter):
    image = make(photo)
    scene = perceive(image, tiny_detector, tiny_segmenter, "tv", box_threshold=0.0, text_threshold=0.0)
    assert_valid_scene(scene, image.shape[0], image.shape[1])


def test_large_photo(tiny_detector, tiny_segmenter):
    from PIL import Image

    image = np.asarray(Image.fromarray(load_photo(1)).resize((6000, 4000)))
    detector_cap = 3  # keep the full-resolution masks of this test small
    found = tiny_detector.detect(image, ["sofa"], box_threshold=0.0, text_threshold=0.0, max_detections=detector_cap)
    masks = tiny_segmenter.segment(image, found.boxes)
    assert masks.shape == (len(found), 4000, 6000)
    assert (found.boxes[:, 2] <= 6000).all() and (found.boxes[:, 3] <= 4000).all()


def test_parts_inside_an_object_get_new_ids_and_parent(photo, tiny_detector, tiny_segmenter):
    h, w = photo.shape[:2]
    within = (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
    parts = detect_objects(photo, tiny_detector, tiny_segmenter, ["handle"], within=within, parent=7,
                           start_id=12, box_threshold=0.0, text_threshold=0.0)
    assert parts.objects, "thresholds 0 must give boxes"
    assert [o.id for o in parts.objects] == list(range(12, 12 + len(parts.objects)))
    for o in parts.objects:
        assert o.parent == 7
        x0, y0, x1, y1 = o.box
        assert within[0] - 1 <= x0 and x1 <= within[2] + 1 and within[1] - 1 <= y0 and y1 <= within[3] + 1


def test_cancel_stops_perception(photo, tiny_detector, tiny_segmenter):
    from cielr_core.progress import Progress

    class Cancelled(Exception):
        pass

    def cancel():
        raise Cancelled

    with pytest.raises(Cancelled):
        perceive(photo, tiny_detector, tiny_segmenter, "tv", progress=Progress(on_check=cancel))
