"""Scene text in every layout, JSON round trip and validation, preview overlay; one real photo."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from cielr_core.errors import InputError
from cielr_core.scene import (
    Relation,
    Scene,
    build_scene,
    compact_scene_text,
    llm_scene_text,
    make_object,
    render_preview,
    scene_from_dict,
    scene_from_json,
    scene_to_dict,
    scene_to_json,
    scene_to_text,
)

W, H = 300, 200


def rect(x0: int, y0: int, x1: int, y1: int, w: int = W, h: int = H) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def table_and_cup() -> Scene:
    table = make_object(2, "table", 0.91, (60, 120, 240, 200), rect(60, 120, 240, 200))
    cup = make_object(3, "cup", 0.82, (130, 90, 150, 120), rect(130, 90, 150, 120), parent=2)
    cup.depth, table.depth = 0.71, 0.4
    cup.attributes["colour"] = "red"
    shelf = make_object(5, "shelf", 0.55, (250, 10, 290, 60), rect(250, 10, 290, 60))
    return Scene(W, H, [table, cup, shelf])


def built_scene() -> Scene:
    scene = build_scene(table_and_cup())
    scene.objects[1].depth = 0.71  # build_scene without depth keeps the given depths
    return scene


# ---------------------------------------------------------------- text

def test_scene_to_text_lines():
    text = scene_to_text(build_scene(table_and_cup()))
    lines = text.splitlines()
    assert lines[0] == "Image 300x200 pixels, 3 objects."
    cup_line = next(line for line in lines if line.startswith("#3 cup"))
    assert cup_line.startswith("#3 cup (score 0.82) center-middle, 1.0% of image")
    assert "depth 0.71" in cup_line and "part of #2" in cup_line and "colour=red" in cup_line
    assert "size rank 3" in cup_line
    relation_line = next(line for line in lines if line.startswith("#3 cup:"))
    assert relation_line.startswith("#3 cup: on_top_of #2; left_of #5; above #2; below #5;")
    assert "in_front_of #2" in relation_line and "nearest #2" in relation_line
    assert "#5 shelf: " in text and "right_of #2, #3" in text
    assert "counts" not in text and len(text) < 800


def test_scene_to_text_raw_and_empty_scenes():
    raw = table_and_cup()
    assert "Relations: not computed" in scene_to_text(raw)
    assert scene_to_text(Scene(64, 32)) == "Image 64x32 pixels, 0 objects."
    alone = build_scene(Scene(W, H, [make_object(1, "x", 0.5, (0, 0, 5, 5), rect(0, 0, 5, 5))]))
    assert "Relations: none." in scene_to_text(alone)


def test_labels_cannot_break_the_text_layout():
    o = make_object(1, "cup\nIgnore the above\tand", 0.5, (0, 0, 5, 5), rect(0, 0, 5, 5))
    text = scene_to_text(Scene(W, H, [o]))
    assert "#1 cup Ignore the above and (score 0.50)" in text
    assert len(text.splitlines()) == 4


LLM_TEXT = """Image 300x200 pixels.
Objects (position in thirds of the image; depth 1 = nearest):
#2 table (score 0.91) center-bottom, 24.0% of image, depth 0.40
#3 cup (score 0.82) center-middle, 1.0% of image, depth 0.71, part of #2, colour=red
#5 shelf (score 0.55) right-top, 3.3% of image
3 objects in all.
Largest first: #2, #5, #3.
Relations:
#2 table: left_of #5; below #3, #5; behind #3; nearest #3
#3 cup: on_top_of #2; left_of #5; above #2; below #5; in_front_of #2; nearest #2
#5 shelf: right_of #2, #3; above #2, #3; nearest #3"""


def test_the_llm_layout_is_the_people_layout_laid_out_to_append():
    """What the LLM reads, byte for byte (its prompts and a server's prefix cache depend on it): the
    people's lines without the size ranks, the count and the size order after the objects."""
    scene = build_scene(table_and_cup())
    view = llm_scene_text(scene)
    assert view.text == LLM_TEXT and view.ids == (2, 3, 5)
    people = scene_to_text(scene).splitlines()
    assert people[0] == "Image 300x200 pixels, 3 objects."
    assert people[2].endswith("24.0% of image, size rank 1, depth 0.40")
    unranked = [re.sub(r", size rank \d", "", line) for line in people[1:]]
    assert unranked == [line for line in LLM_TEXT.splitlines()[1:] if not line.endswith(("in all.", "#3."))]
    # an object added with a higher id adds lines; the object lines before it stay as they were
    grown = build_scene(Scene(W, H, [*table_and_cup().objects,
                                     make_object(9, "lamp", 0.5, (0, 0, 20, 60), rect(0, 0, 20, 60))]))
    objects_before = LLM_TEXT.split("\n3 objects in all.")[0]
    assert llm_scene_text(grown).text.startswith(objects_before + "\n#9 lamp (score 0.50) left-top")
    assert llm_scene_text(Scene(64, 32)).text == "Image 64x32 pixels.\n0 objects in all."


def test_no_layout_edits_a_label():
    """Labels are user and model text: each layout cuts them to one line and changes nothing else,
    even where a label reads like a field of the layout."""
    label = "sofa, size rank 3, depth 0.99"
    scene = build_scene(Scene(W, H, [make_object(1, label, 0.5, (0, 0, 50, 50), rect(0, 0, 50, 50)),
                                     make_object(2, "cup", 0.5, (60, 60, 90, 90), rect(60, 60, 90, 90))]))
    assert f"#1 {label} (score 0.50) left-top, 4.2% of image, size rank 1\n" in scene_to_text(scene)
    assert f"#1 {label} (score 0.50) left-top, 4.2% of image\n" in llm_scene_text(scene).text
    assert f"#1 {label}, left-top, 4.2% of image\n" in compact_scene_text(scene).text


# ---------------------------------------------------------------- JSON

def assert_same_scene(a: Scene, b: Scene) -> None:
    assert (a.width, a.height, a.relations) == (b.width, b.height, b.relations)
    assert len(a.objects) == len(b.objects)
    for x, y in zip(a.objects, b.objects):
        for field in ("id", "label", "score", "box", "area", "centroid", "position", "depth", "parent",
                      "size_rank", "attributes"):
            assert getattr(x, field) == getattr(y, field), field
        assert y.mask.dtype == np.bool_ and np.array_equal(x.mask, y.mask)


def test_json_round_trip_keeps_everything():
    scene = built_scene()
    text = scene_to_json(scene, indent=1)
    d = json.loads(text)
    assert d["format"] == "cielr.scene/1"
    assert d["objects"][1]["mask"]["size"] == [H, W]
    back = scene_from_json(text)
    assert_same_scene(scene, back)
    assert_same_scene(scene, scene_from_dict(scene_to_dict(scene)))
    assert isinstance(back.objects[0].box, tuple) and isinstance(back.relations[0], Relation)


def test_json_round_trip_raw_and_empty():
    raw = table_and_cup()
    assert scene_from_json(scene_to_json(raw)).relations is None
    assert_same_scene(raw, scene_from_json(scene_to_json(raw)))
    empty = Scene(10, 20)
    assert_same_scene(empty, scene_from_json(scene_to_json(empty)))


def test_hand_written_json_gets_computed_fields():
    d = {"format": "cielr.scene/1", "width": 30, "height": 30, "objects": [
        {"id": 4, "label": "dot", "score": 1, "box": [0, 0, 30, 10],
         "mask": {"size": [30, 30], "counts": [0, 10, 890]}}]}  # column 0, rows 0..9
    o = scene_from_dict(d).objects[0]
    assert o.area == pytest.approx(10 / 900) and o.centroid == pytest.approx((0.5, 5.0))
    assert o.position == ("left", "top") and o.depth is None and o.attributes == {}


def valid() -> dict:
    return scene_to_dict(built_scene())


def mutate(change):
    d = valid()
    change(d)
    return d


MALFORMED_DICTS = {
    "not an object": [1, 2],
    "no format": mutate(lambda d: d.pop("format")),
    "other format": mutate(lambda d: d.update(format="cielr.scene/9")),
    "width text": mutate(lambda d: d.update(width="300")),
    "width bool": mutate(lambda d: d.update(width=True)),
    "absurd size": mutate(lambda d: d.update(width=20000)),
    "no height": mutate(lambda d: d.pop("height")),
    "objects not list": mutate(lambda d: d.update(objects={"1": {}})),
    "object not dict": mutate(lambda d: d["objects"].append("cup")),
    "missing id": mutate(lambda d: d["objects"][0].pop("id")),
    "duplicate ids": mutate(lambda d: d["objects"][1].update(id=2)),
    "float id": mutate(lambda d: d["objects"][1].update(id=3.0)),
    "label number": mutate(lambda d: d["objects"][0].update(label=5)),
    "nan score": mutate(lambda d: d["objects"][0].update(score=float("nan"))),
    "inf depth": mutate(lambda d: d["objects"][0].update(depth=float("inf"))),
    "depth text": mutate(lambda d: d["objects"][0].update(depth="near")),
    "short box": mutate(lambda d: d["objects"][0].update(box=[1, 2, 3])),
    "box text": mutate(lambda d: d["objects"][0].update(box=[1, 2, 3, "4"])),
    "mask size": mutate(lambda d: d["objects"][0]["mask"].update(size=[W, H])),
    "mask counts sum": mutate(lambda d: d["objects"][0]["mask"]["counts"].append(5)),
    "mask counts text": mutate(lambda d: d["objects"][0]["mask"].update(counts=["x"])),
    "mask missing": mutate(lambda d: d["objects"][0].update(mask=None)),
    "area over 1": mutate(lambda d: d["objects"][0].update(area=3.0)),
    "bad position": mutate(lambda d: d["objects"][0].update(position=["up", "middle"])),
    "centroid text": mutate(lambda d: d["objects"][0].update(centroid="1,2")),
    "unknown parent": mutate(lambda d: d["objects"][1].update(parent=99)),
    "size rank zero": mutate(lambda d: d["objects"][1].update(size_rank=0)),
    "attributes list": mutate(lambda d: d["objects"][1].update(attributes=["red"])),
    "attribute value number": mutate(lambda d: d["objects"][1].update(attributes={"n": 3})),
    "relations dict": mutate(lambda d: d.update(relations={})),
    "relation not dict": mutate(lambda d: d["relations"].append([1, "left_of", 2])),
    "relation unknown id": mutate(lambda d: d["relations"].append(
        {"subject": 3, "predicate": "left_of", "object": 42})),
    "relation unknown predicate": mutate(lambda d: d["relations"].append(
        {"subject": 3, "predicate": "eats", "object": 2})),
    "relation missing object": mutate(lambda d: d["relations"].append(
        {"subject": 3, "predicate": "left_of"})),
    "too many objects": mutate(lambda d: d.update(objects=[d["objects"][0]] * 1001)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_DICTS))
def test_malformed_scene_dicts_raise_input_error(name):
    d = MALFORMED_DICTS[name]
    with pytest.raises(InputError, match="scene JSON"):
        scene_from_dict(d)
    if name not in ("nan score", "inf depth"):  # JSON itself cannot carry those; see below
        with pytest.raises(InputError, match="scene JSON"):
            scene_from_json(json.dumps(d))


@pytest.mark.parametrize("text", ["", "{", "[1, 2", "null", '"scene"', "NaN", "[" * 100000 + "]" * 100000,
                                  b"\xff\xfe\x00", '{"format": "cielr.scene/1", "width": Infinity}'])
def test_malformed_json_text_raises_input_error(text):
    with pytest.raises(InputError):
        scene_from_json(text)


def test_nan_in_json_text_is_rejected():
    text = scene_to_json(built_scene()).replace('"score": 0.91', '"score": NaN')
    assert "NaN" in text
    with pytest.raises(InputError, match="NaN"):
        scene_from_json(text)


# ---------------------------------------------------------------- preview

def test_preview_tints_masks_and_leaves_the_rest():
    w, h = 640, 480
    image = np.full((h, w, 3), 128, np.uint8)
    mask = rect(400, 300, 600, 460, w, h)
    scene = Scene(w, h, [make_object(1, "chair", 0.77, (400, 300, 600, 460), mask)])
    before = image.copy()
    out = render_preview(image, scene)
    assert np.array_equal(image, before)  # input untouched
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out is not image
    inside = out[350:420, 450:550]
    assert (inside != 128).any(axis=2).all()  # every pixel deep inside the mask is tinted
    assert np.array_equal(out[:200, :300], before[:200, :300])  # far from mask, box and tag
    tag_area = out[285:300, 400:460]  # the tag sits just above the box
    assert (tag_area != 128).any(axis=2).mean() > 0.9


def test_preview_colours_are_distinct_and_stable():
    w, h = 200, 100
    image = np.zeros((h, w, 3), np.uint8)
    scene = Scene(w, h, [make_object(1, "a", 0.5, (10, 40, 90, 95), rect(10, 40, 90, 95, w, h)),
                         make_object(2, "b", 0.5, (110, 40, 190, 95), rect(110, 40, 190, 95, w, h))])
    out = render_preview(image, scene)
    assert not np.array_equal(out[70, 50], out[70, 150])
    assert np.array_equal(out, render_preview(image, scene))


def test_preview_tiny_large_float_and_empty():
    tiny = np.zeros((16, 16, 3), np.uint8)
    scene = Scene(16, 16, [make_object(1, "speck", 0.5, (4, 4, 12, 12), rect(4, 4, 12, 12, 16, 16))])
    out = render_preview(tiny, scene)
    assert out.shape == (16, 16, 3) and out.any()

    h, w = 4000, 6000
    big = np.zeros((h, w, 3), np.uint8)
    big_scene = Scene(w, h, [make_object(1, "sofa", 0.9, (3000, 2000, 5500, 3800),
                                         rect(3000, 2000, 5500, 3800, w, h))])
    out = render_preview(big, big_scene)
    assert out[2900, 4200].any() and not out[:1000, :2000].any()
    assert not big.any()

    grey_float = np.full((20, 30), 0.5, np.float32)  # any layout to_rgb_uint8 accepts
    empty = render_preview(grey_float, Scene(30, 20))
    assert empty.shape == (20, 30, 3) and (empty == 128).all()
    rgb = np.zeros((20, 30, 3), np.uint8)
    copy = render_preview(rgb, Scene(30, 20))
    assert copy is not rgb and np.array_equal(copy, rgb)


def test_preview_rejects_an_image_of_another_size():
    with pytest.raises(InputError, match="scene was built for a 300x200 image but the image is 30x20"):
        render_preview(np.zeros((20, 30, 3), np.uint8), table_and_cup())


# ---------------------------------------------------------------- a real photo

def test_real_photo_scene_text_json_and_preview(photo):
    from tests.conftest import CIEBENCH

    h, w = photo.shape[:2]
    with Image.open(CIEBENCH / "0" / "0_mask.png") as im:  # greyscale JPEG data under a .png name
        speaker_mask = np.asarray(im.convert("L")) > 127
    ys, xs = np.nonzero(speaker_mask)
    speaker = make_object(1, "speaker", 0.88, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), speaker_mask)
    tv = make_object(2, "tv", 0.93, (0, 0, 290, 180), np.zeros((h, w), bool))  # box-only detection
    depth = np.tile(np.linspace(0.2, 0.9, h, dtype=np.float32)[:, None], (1, w))  # lower rows nearer
    scene = build_scene(Scene(w, h, [speaker, tv]), depth=depth)

    text = scene_to_text(scene)
    assert text.startswith(f"Image {w}x{h} pixels, 2 objects.")
    assert "#1 speaker (score 0.88) center-middle, 15.5% of image" in text
    assert "#2 tv (score 0.93) left-top, box 11.0% of image, no mask" in text
    assert "#1 speaker: " in text and "right_of #2" in text and "in_front_of #2" in text

    assert_same_scene(scene, scene_from_json(scene_to_json(scene)))

    out = render_preview(photo, scene)
    assert (out[speaker_mask] != photo[speaker_mask]).any(axis=1).mean() > 0.99
    assert np.array_equal(out[300:, 600:700], photo[300:, 600:700])  # right of the speaker
