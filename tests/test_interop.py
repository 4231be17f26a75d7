"""Scenes from other packs' masks, boxes and SEGS, and plans out as masks (no ComfyUI server here).

The SEGS are laid out the way Impact Pack builds them (a namedtuple with its field names, float32
crops covering end-exclusive crop regions), boxes come in the shapes BBOX-producing packs use, the
segmenter is the real SAM code with a tiny random model, and the plan regions are compared with
what ``execute_plan`` actually edits.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch

from cielr_core.editing import EditSettings, execute_plan, feathered_mask, plan_regions
from cielr_core.errors import InputError
from cielr_core.plan import Plan, PlanError
from cielr_core.reasoning import refine_scene
from cielr_core.reasoning.refine import NO_DETECTOR
from cielr_core.scene import (
    Part,
    box_dicts,
    build_scene,
    is_bounding_box,
    scene_from_parts,
    scene_to_text,
    split_labels,
    split_scores,
)
from cielr_core.scene.external import FROM_BOX_SAM, FROM_BOX_SHAPE, MASK_ATTRIBUTE
from cielr_core.scene.masks import box_mask
from nodes.bridge import BOX_FORMATS, box_list, mask_batch, masks_tensor, segs_parts
from tests.conftest import load_photo
from tests.test_editing_execute import Recorder

W, H = 96, 64
SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                         "control_net_wrapper"], defaults=[None])


def rect(x0, y0, x1, y1, value=1.0, width=W, height=H) -> np.ndarray:
    m = np.zeros((height, width), np.float32)
    m[y0:y1, x0:x1] = value
    return m


# ------------------------------------------------------------------------------ masks

def test_masks_become_objects_with_positional_ids():
    parts = [Part("lamp", 0.9, mask=rect(10, 5, 30, 20), name="mask 1"),
             Part("table", 1.0, mask=rect(10, 40, 50, 60), name="mask 2"),
             Part("ghost", 1.0, mask=rect(0, 0, 96, 64, value=0.4), name="mask 3"),  # soft, below 0.5
             Part("cup", 1.0, mask=rect(60, 10, 70, 20, value=0.6), name="mask 4")]
    imported = scene_from_parts(W, H, parts)
    scene = imported.scene
    assert [o.id for o in scene.objects] == [1, 2, 4]  # #3 dropped, #4 keeps its batch position
    assert [o.label for o in scene.objects] == ["lamp", "table", "cup"]
    assert scene.get(1).area == pytest.approx(20 * 15 / (W * H)) and scene.get(1).score == 0.9
    assert scene.get(1).box == (10.0, 5.0, 30.0, 20.0) and scene.get(4).mask.sum() == 100
    assert scene.relations is None
    assert "mask 3 (ghost) is empty" in imported.text() and "#3 is not used" in imported.text()
    built = build_scene(scene)
    relations = {(r.subject, r.predicate, r.object) for r in built.relations}
    assert (1, "above", 2) in relations and (2, "below", 1) in relations
    assert (4, "right_of", 1) in relations


def test_input_masks_are_not_modified():
    soft = rect(5, 5, 20, 20, value=0.7)
    before = soft.copy()
    scene_from_parts(W, H, [Part("a", mask=soft)])
    assert np.array_equal(soft, before)


def test_labels_and_scores_one_per_object_or_one_for_all():
    assert split_labels("sofa, lamp ,tv", 3) == ["sofa", "lamp", "tv"]
    assert split_labels("red, shiny cup\nbox\n", 2) == ["red, shiny cup", "box"]  # lines win over commas
    assert split_labels("person", 3) == ["person"] * 3
    assert split_scores("", 2) == [1.0, 1.0] and split_scores("0.5", 2) == [0.5, 0.5]
    assert split_scores("0.9\n0.25", 2) == [0.9, 0.25]
    with pytest.raises(InputError, match="3 masks but 2 labels"):
        split_labels("a, b", 3)
    with pytest.raises(InputError, match="2 boxes but 3 scores"):
        split_scores("1, 1, 1", 2, "box")
    with pytest.raises(InputError, match="label 2 is empty"):
        split_labels("a,,b", 3)
    with pytest.raises(InputError, match="no labels"):
        split_labels("  ", 1)
    with pytest.raises(InputError, match="out of range"):
        split_scores("1.5", 1)
    with pytest.raises(InputError, match="not a number"):
        split_scores("high", 1)


def test_mask_of_another_size_names_both_sizes():
    with pytest.raises(InputError, match="1x1 but the image is 96x64"):
        scene_from_parts(W, H, [Part("a", mask=np.ones((1, 1), np.float32))])


def test_mask_batch_shapes_and_copies():
    t = torch.zeros(2, 4, 5)
    out = mask_batch(t, "N")
    out[:] = 1
    assert out.shape == (2, 4, 5) and t.sum() == 0
    assert mask_batch(torch.zeros(4, 5), "N").shape == (1, 4, 5)
    assert mask_batch(torch.zeros(3, 4, 5, 1), "N").shape == (3, 4, 5)
    with pytest.raises(InputError, match="MASK batch"):
        mask_batch(torch.zeros(1, 2, 4, 5), "N")
    assert masks_tensor([], 4, 5).shape == (1, 4, 5)  # no masks: one empty one, which every node takes


# ------------------------------------------------------------------------------ boxes

def test_boxes_without_a_segmenter_become_box_shaped_masks():
    parts = [Part("lamp", box=(10.5, 5, 30, 20), name="box 1"), Part("gone", box=(200, 200, 300, 300), name="box 2")]
    imported = scene_from_parts(W, H, parts)
    (lamp,) = imported.scene.objects
    assert lamp.id == 1 and lamp.attributes[MASK_ATTRIBUTE] == FROM_BOX_SHAPE
    # pixel centres inside the box
    assert np.array_equal(lamp.mask, box_mask((10.5, 5, 30, 20), W, H)) and lamp.mask.sum() == 20 * 15
    assert "box 2 (gone) has no area inside the 96x64 image" in imported.text()
    assert "box-shaped masks" in imported.text()
    assert f"mask={FROM_BOX_SHAPE}" in scene_to_text(build_scene(imported.scene))  # the LLM reads it too


def test_boxes_with_the_sam_segmenter(tiny_sam_path):
    from cielr_core.perception import load_sam

    photo = load_photo(0)
    h, w = photo.shape[:2]
    segmenter = load_sam(tiny_sam_path)
    boxes = [(100, 80, 300, 260), (420, 300, 700, 560)]
    calls = []

    def segment(b):
        calls.append(b.copy())
        return segmenter.segment(photo, b)

    imported = scene_from_parts(w, h, [Part("a", box=b) for b in boxes], segment=segment)
    assert len(calls) == 1 and calls[0].shape == (2, 4)  # one SAM call, one image embedding
    expected = segmenter.segment(photo, np.array(boxes, np.float32))
    for o, m, b in zip(imported.scene.objects, expected, boxes):
        if m.any():
            assert o.attributes[MASK_ATTRIBUTE] == FROM_BOX_SAM and np.array_equal(o.mask, m)
        else:  # the tiny random SAM may find nothing: the box stands in, and says so
            assert o.attributes[MASK_ATTRIBUTE] == FROM_BOX_SHAPE and np.array_equal(o.mask, box_mask(b, w, h))
    assert "segmented by SAM" in imported.text()


@pytest.mark.parametrize("given", [
    [[1, 2, 11, 12], [5, 5, 9, 9]],
    [[[1, 2, 11, 12], [5, 5, 9, 9]]],  # one list per image
    [{"bbox": [1, 2, 11, 12], "label": "x"}, {"bbox_2d": [5, 5, 9, 9]}],
    torch.tensor([[1.0, 2, 11, 12], [5, 5, 9, 9]]),
    [np.array([1, 2, 11, 12]), np.array([5, 5, 9, 9])],
])
def test_bbox_lists_from_other_packs(given):
    assert box_list(given, BOX_FORMATS[0], "N").tolist() == [[1, 2, 11, 12], [5, 5, 9, 9]]


def test_bbox_formats_and_errors():
    assert box_list([1, 2, 10, 10], BOX_FORMATS[1], "N").tolist() == [[1, 2, 11, 12]]
    with pytest.raises(InputError, match="boxes for 2 images"):
        box_list([[[1, 2, 3, 4]], [[1, 2, 3, 4]]], BOX_FORMATS[0], "N")
    with pytest.raises(InputError, match="box 2 is not four finite numbers"):
        box_list([[1, 2, 3, 4], [1, 2, 3]], BOX_FORMATS[0], "N")
    with pytest.raises(InputError, match="BBOX list"):
        box_list("1, 2, 3, 4", BOX_FORMATS[0], "N")


# Core SAM3 Detect's ``bboxes`` output (BOUNDING_BOX): per image, a list of corner-plus-size dicts with a score
SAM3_BOXES = [[{"x": 1.0, "y": 2.0, "width": 10.0, "height": 10.0, "score": 0.93},
               {"x": 5.5, "y": 5.0, "width": 3.5, "height": 4.0, "score": 0.51}]]


@pytest.mark.parametrize("given", [SAM3_BOXES, SAM3_BOXES[0], tuple(SAM3_BOXES[0])])
def test_bounding_boxes_per_image_or_flat(given):
    boxes, scores = box_dicts(given)
    assert boxes == [(1.0, 2.0, 11.0, 12.0), (5.5, 5.0, 9.0, 9.0)] and scores == [0.93, 0.51]


def test_bounding_box_widget_dict_and_no_detections():
    assert box_dicts({"x": 3, "y": 4, "width": 5, "height": 6}) == ([(3.0, 4.0, 8.0, 10.0)], [None])
    assert box_dicts([[]]) == ([], []) and box_dicts([]) == ([], [])  # SAM3 found nothing in the image


@pytest.mark.parametrize("given, problem", [
    ([[SAM3_BOXES[0][0]], [SAM3_BOXES[0][1]]], "boxes for 2 images"),
    ([{"x": 1, "y": 2, "width": 3}], "box 1 is not a dict with x, y, width, height"),
    ([[1, 2, 3, 4]], "box 1 is not a dict"),
    ([{"x": 1, "y": 2, "width": -3, "height": 4}], "size of 0 or more"),
    ([{"x": float("nan"), "y": 2, "width": 3, "height": 4}], "finite numbers"),
    ([{"x": "left", "y": 2, "width": 3, "height": 4}], "finite numbers"),
    ([{"x": 1, "y": 2, "width": 3, "height": 4, "score": 1.5}], "out of range"),
    ("1, 2, 3, 4", "is a str, not a list of boxes"),
])
def test_bounding_box_errors(given, problem):
    with pytest.raises(InputError, match=problem):
        box_dicts(given)


def test_bounding_boxes_are_told_from_bbox_lists():
    assert is_bounding_box(SAM3_BOXES) and is_bounding_box(SAM3_BOXES[0]) and is_bounding_box(SAM3_BOXES[0][0])
    assert is_bounding_box([[{"x": 1}]])  # malformed, but a BOUNDING_BOX: box_dicts says what is wrong
    for bbox in ([[1, 2, 3, 4]], [{"bbox": [1, 2, 3, 4]}], [{"box": [1, 2, 3, 4], "x": 1}], [[]], [], "1, 2"):
        assert not is_bounding_box(bbox), bbox


def test_scores_from_the_detector_unless_typed():
    assert split_scores("", 3, "box", own=[0.9, None, 0.25]) == [0.9, 1.0, 0.25]
    assert split_scores("0.5", 3, "box", own=[0.9, None, 0.25]) == [0.5] * 3  # typed scores win
    assert split_scores("", 2, "box", own=[]) == [1.0, 1.0]


# ------------------------------------------------------------------------------ SEGS

def impact_segs():
    """Four SEGs as Impact lays them out: crops at offsets (crop_region wider than the object),
    one touching the right and bottom border, one empty, one with a torch [1, h, w] mask."""
    def seg(crop, filled, label, confidence, torch_mask=False):
        x0, y0, x1, y1 = crop
        m = np.zeros((y1 - y0, x1 - x0), np.float32)
        fx0, fy0, fx1, fy1 = filled
        m[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = 1.0
        mask = torch.from_numpy(m)[None] if torch_mask else m
        return SEG(None, mask, np.float32(confidence), [x0, y0, x1, y1], [fx0, fy0, fx1, fy1], label)

    return ((H, W), [seg((4, 2, 40, 30), (10, 6, 30, 20), "face", 0.91),
                     seg((70, 40, 96, 64), (80, 50, 96, 64), "hand", 0.5),  # touches the border
                     seg((0, 0, 20, 20), (0, 0, 0, 0), "empty", 0.3),
                     seg((40, 30, 70, 60), (45, 35, 60, 50), "cup", 0.7, torch_mask=True)])


def test_segs_masks_land_at_their_crop_regions():
    height, width, parts = segs_parts(impact_segs(), "N")
    assert (height, width) == (H, W) and len(parts) == 4
    imported = scene_from_parts(width, height, parts)
    scene = imported.scene
    assert [(o.id, o.label) for o in scene.objects] == [(1, "face"), (2, "hand"), (4, "cup")]
    assert np.array_equal(scene.get(1).mask, rect(10, 6, 30, 20) > 0)
    assert np.array_equal(scene.get(2).mask, rect(80, 50, 96, 64) > 0)
    assert np.array_equal(scene.get(4).mask, rect(45, 35, 60, 50) > 0)
    assert scene.get(1).score == pytest.approx(0.91)
    assert "SEG 3 (empty) is empty" in imported.text()


def test_seg_without_a_mask_uses_its_bbox():
    segs = ((H, W), [SEG(None, None, 0.8, [0, 0, 50, 50], [5, 6, 25, 30], "person")])
    _, _, (part,) = segs_parts(segs, "N")
    assert part.mask is None and part.box == (5, 6, 25, 30)


def test_malformed_segs_are_named():
    with pytest.raises(InputError, match="Impact Pack SEGS"):
        segs_parts([1, 2, 3], "N")
    with pytest.raises(InputError, match="has no 'label'"):
        segs_parts(((H, W), [object()]), "N")
    bad = SEG(None, np.zeros((5, 5), np.float32), 1.0, [0, 0, 10, 10], [0, 0, 5, 5], "x")
    with pytest.raises(InputError, match="mask is 5x5 but its crop_region"):
        segs_parts(((H, W), [bad]), "N")


# ------------------------------------------------------------------------------ plans out

def two_object_scene():
    parts = [Part("lamp", mask=rect(10, 5, 30, 20)), Part("table", mask=rect(50, 30, 90, 60))]
    return build_scene(scene_from_parts(W, H, parts).scene)


def test_plan_regions_are_what_execute_plan_edits():
    """Same masks as the engine blends: a black float image inpainted with pure red then pure blue
    (the Recorder engine) holds action 1's weight in red and action 2's in blue."""
    scene = two_object_scene()
    plan = Plan.model_validate({"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"},
                                            {"op": "remove", "targets": [2]}]})
    settings = EditSettings(grow=5, feather=4, context=8, working_size=64)
    regions = plan_regions(scene, plan, settings)
    assert [r.op for r in regions] == ["replace", "remove"] and [r.denoise for r in regions] == [1.0, 1.0]
    assert regions[1].negative == "table" and regions[1].prompt == settings.background_prompt
    black = np.zeros((H, W, 3), np.float32)
    result = execute_plan(black, scene, plan, Recorder(colours=((1.0, 0, 0), (0, 0, 1.0))), settings)
    union = np.maximum(regions[0].weight, regions[1].weight)
    assert np.array_equal(result.mask > 0, union > 0)  # exactly the engine's region
    np.testing.assert_allclose(result.previews[0][..., 0], regions[0].weight, atol=1e-6)
    np.testing.assert_allclose(result.image[..., 2], regions[1].weight, atol=1e-6)
    assert np.array_equal(regions[0].weight, feathered_mask(scene.get(1).mask, settings))


def test_plan_regions_check_the_plan():
    scene = two_object_scene()
    with pytest.raises(PlanError, match=r"\[7\] that are not in the scene"):
        plan_regions(scene, Plan.model_validate({"actions": [{"op": "remove", "targets": [7]}]}))


# ------------------------------------------------------------------------------ refine without a detector

def test_refine_without_a_detector_asks_and_adds_nothing(scripted_server):
    from cielr_core.llm import RemoteLLM

    scene = two_object_scene()
    scripted_server.answer({"note": "the speaker is missing", "sufficient": False, "missing_labels": ["speaker"],
                            "search_within": None})
    llm = RemoteLLM(scripted_server.base_url, "scripted", timeout=10, max_retries=1)
    result = refine_scene(scene, "Replace the speaker with a lamp.", llm, None, max_rounds=3)
    assert result.stop == NO_DETECTOR and len(scripted_server.requests) == 1
    assert [o.id for o in result.scene.objects] == [1, 2] and result.added == []
    text = result.text()
    assert "Would look for speaker in the whole image, but no detector is connected: nothing added." in text
    assert "no detector is connected, so nothing was added" in text


def test_detection_without_a_segmenter_gives_box_shaped_masks(photo, tiny_detector):
    """What Refine Scene does with a detector but no SAM connected."""
    from cielr_core.perception import detect_objects

    found = detect_objects(photo, tiny_detector, None, ["tv", "sofa"], box_threshold=0.0, text_threshold=0.0)
    assert found.objects
    h, w = photo.shape[:2]
    for o in found.objects:
        assert o.attributes[MASK_ATTRIBUTE] == FROM_BOX_SHAPE
        assert np.array_equal(o.mask, box_mask(o.box, w, h))
