"""CIELR between other packs, in the real ComfyUI server (POST /prompt).

Masks are made by core nodes from a real photo (SolidMask + MaskComposite rectangles, a threshold of
the photo's red channel), SEGS and BBOX lists by the test-only nodes in devkit/comfy_nodes (the
way Impact Pack and Florence-2 packs build them: Impact itself is not installed here), and the plan
drives core SetLatentNoiseMask + KSampler with the random (reduced) SD1.5 checkpoint.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import requests
from PIL import Image

from devkit.comfyui import describe, execution_error, link_model
from tests.conftest import CIEBENCH

pytestmark = pytest.mark.slow

PHOTO = "cielr_interop_photo.png"
W, H = 796, 597  # the photo's size
NODES = {
    "CIELRSceneFromMasks": ["CIELR_SCENE", "STRING"],
    "CIELRSceneFromBoxes": ["CIELR_SCENE", "STRING"],
    "CIELRSceneFromSEGS": ["CIELR_SCENE", "STRING"],
    "CIELRSceneToMasks": ["MASK", "STRING", "STRING"],
    "CIELRPlanToMasks": ["MASK", "MASK", "STRING", "STRING", "MASK", "STRING", "STRING", "FLOAT"],
    "CIELRBuildScene": ["CIELR_SCENE", "STRING", "IMAGE", "STRING"],
}


@pytest.fixture(scope="module")
def server(comfyui):
    (comfyui.base / "input").mkdir(exist_ok=True)
    shutil.copy(CIEBENCH / "0" / "0.png", comfyui.base / "input" / PHOTO)
    return comfyui


@pytest.fixture(scope="module")
def photo(server) -> np.ndarray:
    with Image.open(server.base / "input" / PHOTO) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape == (H, W, 3)
    return rgb


def ok(server, prompt: dict, timeout: float = 600) -> dict:
    entry = server.run(prompt, timeout=timeout)
    assert execution_error(entry) is None, describe(execution_error(entry))
    return entry["outputs"]


def error_of(server, prompt: dict) -> dict:
    error = execution_error(server.run(prompt))
    assert error is not None, "the graph ran without an error"
    return error


def text(outputs: dict, node: str) -> str:
    return outputs[node]["text"][0]


def saved(server, outputs: dict, node: str) -> list[np.ndarray]:
    images = []
    for info in outputs[node]["images"]:
        with Image.open(server.base / info["type"] / info["subfolder"] / info["filename"]) as im:
            images.append(np.asarray(im.convert("RGB")))
    return images


def rect_mask(prefix: str, size: tuple[str, int, int] | tuple[int, int], box, value: float = 1.0) -> dict:
    """Core nodes drawing a filled rectangle (x0, y0, x1, y1) on an empty mask of the image's size."""
    x0, y0, x1, y1 = box
    w, h = size
    return {
        f"{prefix}a": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": w, "height": h}},
        f"{prefix}b": {"class_type": "SolidMask", "inputs": {"value": value, "width": x1 - x0, "height": y1 - y0}},
        f"{prefix}": {"class_type": "MaskComposite", "inputs": {"destination": [f"{prefix}a", 0],
                                                               "source": [f"{prefix}b", 0], "x": x0, "y": y0,
                                                               "operation": "add"}},
    }


def batch(keys: list[str], prefix: str = "batch") -> dict:
    """MASKs -> one MASK batch with core nodes (MaskToImage, ImageBatch, ImageToMask)."""
    nodes = {f"{prefix}_img{k}": {"class_type": "MaskToImage", "inputs": {"mask": [key, 0]}}
             for k, key in enumerate(keys)}
    last = f"{prefix}_img0"
    for k in range(1, len(keys)):
        nodes[f"{prefix}_cat{k}"] = {"class_type": "ImageBatch",
                                     "inputs": {"image1": [last, 0], "image2": [f"{prefix}_img{k}", 0]}}
        last = f"{prefix}_cat{k}"
    nodes[prefix] = {"class_type": "ImageToMask", "inputs": {"image": [last, 0], "channel": "red"}}
    return nodes


def save_masks(key: str, output: int, prefix: str) -> dict:
    return {f"{prefix}_img": {"class_type": "MaskToImage", "inputs": {"mask": [key, output]}},
            f"{prefix}": {"class_type": "SaveImage", "inputs": {"images": [f"{prefix}_img", 0],
                                                               "filename_prefix": prefix}}}


LAMP, TABLE, SOFT = (60, 40, 260, 200), (60, 380, 460, 560), (500, 40, 700, 200)


def masks_graph(labels: str = "lamp, table, bright area, faint") -> dict:
    """Four masks from core nodes on the photo: a rectangle, one drawn below it, the photo's bright red
    pixels (ImageToMask + ThresholdMask), and a soft 0.4 rectangle that counts as empty."""
    prompt = {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
              "red": {"class_type": "ImageToMask", "inputs": {"image": ["photo", 0], "channel": "red"}},
              "bright": {"class_type": "ThresholdMask", "inputs": {"mask": ["red", 0], "value": 0.6}}}
    prompt.update(rect_mask("lamp", (W, H), LAMP))
    prompt.update(rect_mask("table", (W, H), TABLE))
    prompt.update(rect_mask("faint", (W, H), SOFT, value=0.4))
    prompt.update(batch(["lamp", "table", "bright", "faint"]))
    prompt["scene"] = {"class_type": "CIELRSceneFromMasks",
                       "inputs": {"image": ["photo", 0], "masks": ["batch", 0], "labels": labels, "scores": "0.9"}}
    prompt["build"] = {"class_type": "CIELRBuildScene", "inputs": {"image": ["photo", 0], "scene": ["scene", 0]}}
    prompt["report"] = {"class_type": "PreviewAny", "inputs": {"source": ["scene", 1]}}
    prompt["json"] = {"class_type": "PreviewAny", "inputs": {"source": ["build", 1]}}
    prompt["text"] = {"class_type": "PreviewAny", "inputs": {"source": ["build", 3]}}
    return prompt


def test_object_info_lists_the_interop_nodes(server):
    info = server.object_info()
    for node, outputs in NODES.items():
        assert node in info, f"{node} missing from /object_info"
        assert info[node]["category"].startswith("CIELR/") and list(info[node]["output"]) == outputs
        for section in ("required", "optional"):
            for name, spec in info[node]["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node}.{name} has no tooltip"
    assert info["CIELRPlanToMasks"]["output_is_list"] == [False] * 4 + [True] * 4
    assert list(info["CIELRBuildScene"]["output_name"]) == ["scene", "json", "preview", "text"]
    refine = info["CIELRRefineScene"]["input"]
    assert list(refine["required"]) == ["image", "scene", "llm", "instruction", "max_rounds", "box_threshold",
                                        "text_threshold"]
    assert list(refine["optional"]) == ["detector", "segmenter"]
    assert list(info["CIELRDecompose"]["input"]["optional"]) == ["image"]
    # one socket takes a BBOX list and core SAM3's BOUNDING_BOX (a union ComfyUI's validation and frontend split)
    boxes = info["CIELRSceneFromBoxes"]["input"]
    assert list(boxes["required"]) == ["image", "boxes", "labels", "box_format"]
    assert boxes["required"]["boxes"][0] == "BBOX,BOUNDING_BOX" and list(boxes["optional"]) == ["scores", "segmenter"]


def test_scene_from_masks_made_by_core_nodes(server, photo):
    from cielr_core.scene import scene_from_json

    outputs = ok(server, masks_graph())
    scene = scene_from_json(text(outputs, "json"))
    assert [(o.id, o.label) for o in scene.objects] == [(1, "lamp"), (2, "table"), (3, "bright area")]
    bright = photo[..., 0].astype(np.float32) / 255.0 > 0.6  # LoadImage + ImageToMask + ThresholdMask
    for o, expected in zip(scene.objects, [LAMP, TABLE, None]):
        if expected:
            x0, y0, x1, y1 = expected
            assert o.box == (x0, y0, x1, y1) and o.area == pytest.approx((x1 - x0) * (y1 - y0) / (W * H))
        else:
            assert np.array_equal(o.mask, bright) and o.area == pytest.approx(bright.mean())
        assert o.score == pytest.approx(0.9)
    relations = {(r.subject, r.predicate, r.object) for r in scene.relations}
    assert (1, "above", 2) in relations and (2, "below", 1) in relations
    report = text(outputs, "report")
    assert "mask 4 (faint) is empty" in report and "#4 is not used" in report
    llm_view = text(outputs, "text")
    assert "#1 lamp" in llm_view and "above #2" in llm_view and "counts" not in llm_view
    assert len(llm_view) < len(text(outputs, "json")) / 10


def test_bad_mask_inputs_give_clear_errors(server, closed_port_url):
    prompt = masks_graph(labels="lamp, table")
    error = error_of(server, prompt)
    assert error["node_type"] == "CIELRSceneFromMasks" and "4 masks but 2 labels" in error["exception_message"]

    prompt = masks_graph()
    prompt["tiny"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 1, "height": 1}}
    prompt["scene"]["inputs"].update(masks=["tiny", 0], labels="dot")
    message = error_of(server, prompt)["exception_message"]
    assert f"masks are 1x1 but the image is {W}x{H}" in message

    prompt = masks_graph()
    prompt["two"] = {"class_type": "ImageBatch", "inputs": {"image1": ["photo", 0], "image2": ["photo", 0]}}
    prompt["scene"]["inputs"]["image"] = ["two", 0]
    message = error_of(server, prompt)["exception_message"]
    assert "one image at a time, but got a batch of 2" in message

    # a scene made for a smaller copy of the photo, planned against the photo itself
    prompt = {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
              "small": {"class_type": "ImageScale", "inputs": {"image": ["photo", 0], "upscale_method": "area",
                                                              "width": 200, "height": 150, "crop": "disabled"}},
              **rect_mask("m", (200, 150), (10, 10, 60, 60)),
              "scene": {"class_type": "CIELRSceneFromMasks",
                        "inputs": {"image": ["small", 0], "masks": ["m", 0], "labels": "lamp"}},
              "build": {"class_type": "CIELRBuildScene", "inputs": {"image": ["small", 0], "scene": ["scene", 0]}},
              "llm": {"class_type": "CIELRLLMRemote",
                      "inputs": {"base_url": closed_port_url, "model": "none", "api_key_env": "", "temperature": 0.0,
                                 "seed": 0, "timeout": 5.0, "vision": False}},
              "plan": {"class_type": "CIELRDecompose",
                       "inputs": {"scene": ["build", 0], "llm": ["llm", 0], "instruction": "remove the lamp",
                                  "image": ["photo", 0]}},
              "show": {"class_type": "PreviewAny", "inputs": {"source": ["plan", 1]}}}
    error = error_of(server, prompt)
    assert error["node_type"] == "CIELRDecompose"
    assert f"built for a 200x150 image but the image connected is {W}x{H}" in error["exception_message"]


SEGS_SPEC = {"size": [H, W], "segs": [
    # crop regions wider than the objects (Impact's crop_factor), at offsets
    {"crop_region": [100, 50, 400, 300], "filled": [[180, 110, 320, 240]], "label": "face", "confidence": 0.93},
    # touching the right and bottom border
    {"crop_region": [600, 400, W, H], "filled": [[700, 500, W, H]], "label": "hand", "confidence": 0.61},
    # nothing in it
    {"crop_region": [10, 300, 110, 400], "filled": [], "label": "ghost", "confidence": 0.3},
    # a MaskToSEGS-style torch mask [1, h, w], soft inside
    {"crop_region": [420, 60, 560, 220], "filled": [[450, 90, 530, 200]], "value": 0.8, "label": "cup",
     "confidence": 1.0, "mask": "torch"},
]}


def test_scene_from_segs_places_each_crop(server):
    prompt = {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
              "segs": {"class_type": "TestOnlyImpactSEGS", "inputs": {"spec": json.dumps(SEGS_SPEC)}},
              "scene": {"class_type": "CIELRSceneFromSEGS", "inputs": {"image": ["photo", 0], "segs": ["segs", 0]}},
              "out": {"class_type": "CIELRSceneToMasks", "inputs": {"scene": ["scene", 0]}},
              "report": {"class_type": "PreviewAny", "inputs": {"source": ["scene", 1]}},
              "labels": {"class_type": "PreviewAny", "inputs": {"source": ["out", 1]}},
              "ids": {"class_type": "PreviewAny", "inputs": {"source": ["out", 2]}},
              **save_masks("out", 0, "cielr_segs_masks")}
    outputs = ok(server, prompt)
    assert text(outputs, "ids") == "1, 2, 4" and text(outputs, "labels") == "face\nhand\ncup"
    assert "SEG 3 (ghost) is empty" in text(outputs, "report")
    masks = [m[..., 0] > 127 for m in saved(server, outputs, "cielr_segs_masks")]
    for mask, seg in zip(masks, [SEGS_SPEC["segs"][k] for k in (0, 1, 3)]):
        expected = np.zeros((H, W), bool)
        x0, y0, x1, y1 = seg["filled"][0]
        expected[y0:y1, x0:x1] = True
        assert np.array_equal(mask, expected), seg["label"]

    spec = {**SEGS_SPEC, "size": [100, 100]}
    prompt["segs"]["inputs"]["spec"] = json.dumps(spec)
    message = error_of(server, prompt)["exception_message"]
    assert f"SEGS is 100x100 but the image is {W}x{H}" in message


def test_scene_from_boxes_with_and_without_sam(server):
    boxes = [[100, 80, 300, 260], {"bbox": [420, 300, 700, 560]}, [900, 900, 950, 950]]
    prompt = {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
              "bbox": {"class_type": "TestOnlyBBOX", "inputs": {"boxes": json.dumps(boxes)}},
              "sam": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": "tiny_sam.pth", "device": "auto"}},
              "plain": {"class_type": "CIELRSceneFromBoxes",
                        "inputs": {"image": ["photo", 0], "boxes": ["bbox", 0], "labels": "tv, sofa, outside",
                                   "box_format": "x0, y0, x1, y1"}},
              "sam_scene": {"class_type": "CIELRSceneFromBoxes",
                            "inputs": {"image": ["photo", 0], "boxes": ["bbox", 0], "labels": "tv, sofa, outside",
                                       "box_format": "x0, y0, x1, y1", "segmenter": ["sam", 0]}},
              "b1": {"class_type": "CIELRBuildScene", "inputs": {"image": ["photo", 0], "scene": ["plain", 0]}},
              "b2": {"class_type": "CIELRBuildScene", "inputs": {"image": ["photo", 0], "scene": ["sam_scene", 0]}},
              "j1": {"class_type": "PreviewAny", "inputs": {"source": ["b1", 1]}},
              "j2": {"class_type": "PreviewAny", "inputs": {"source": ["b2", 1]}},
              "r1": {"class_type": "PreviewAny", "inputs": {"source": ["plain", 1]}},
              "r2": {"class_type": "PreviewAny", "inputs": {"source": ["sam_scene", 1]}}}
    from cielr_core.scene import scene_from_json
    from cielr_core.scene.external import FROM_BOX_SAM, FROM_BOX_SHAPE, MASK_ATTRIBUTE

    outputs = ok(server, prompt)
    plain, with_sam = (scene_from_json(text(outputs, k)) for k in ("j1", "j2"))
    assert [o.id for o in plain.objects] == [1, 2] == [o.id for o in with_sam.objects]
    assert all(o.attributes[MASK_ATTRIBUTE] == FROM_BOX_SHAPE for o in plain.objects)
    assert plain.get(1).mask.sum() == 200 * 180 and plain.get(1).box == (100, 80, 300, 260)
    assert "box 3 (outside) has no area" in text(outputs, "r1") and "box-shaped masks" in text(outputs, "r1")
    assert "segmented by SAM" in text(outputs, "r2")
    for o in with_sam.objects:
        assert o.attributes[MASK_ATTRIBUTE] in (FROM_BOX_SAM, FROM_BOX_SHAPE)
        if o.attributes[MASK_ATTRIBUTE] == FROM_BOX_SAM:
            assert not np.array_equal(o.mask, plain.get(o.id).mask)


SIZE = (128, 96)  # a small copy of the photo: SD1.5 on a CPU samples it in about a second
# Inpaint Actions on the small photo ("small"), its scene ("build") and plan ("plan"), with the checkpoint ("ckpt")
INPAINT_SMALL = {"class_type": "CIELRInpaintActions",
                 "inputs": {"image": ["small", 0], "scene": ["build", 0], "plan": ["plan", 0], "model": ["ckpt", 0],
                            "clip": ["ckpt", 1], "vae": ["ckpt", 2], "seed": 3, "steps": 1, "cfg": 5.0,
                            "sampler_name": "euler", "scheduler": "normal", "grow": 4, "feather": 3, "context": 8,
                            "working_size": 64, "negative": "", "background_prompt": "a wall",
                            "recolor_denoise": 0.6}}


def link_checkpoint(server, sd15_models) -> None:
    """The random SD1.5 checkpoint in the server's checkpoints folder, for CheckpointLoaderSimple."""
    link_model(server.base / "models", "checkpoints", sd15_models.checkpoint)


SAM3_FOUND = [[[10, 8, 50, 40, 0.93], [70, 50, 120, 90, 0.61]]]  # per image: x0, y0, x1, y1, score


def sam3_graph(detections, labels: str = "lamp, table", **scene_inputs) -> dict:
    """A small copy of the photo -> core SAM3 Detect's outputs (the stand-in builds upstream's BOUNDING_BOX) ->
    Scene From Boxes -> Build Scene, with the report and the scene's JSON shown."""
    w, h = SIZE
    return {
        "photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "small": {"class_type": "ImageScale", "inputs": {"image": ["photo", 0], "upscale_method": "area",
                                                        "width": w, "height": h, "crop": "disabled"}},
        "sam3": {"class_type": "TestOnlySAM3Detect",
                 "inputs": {"image": ["small", 0], "detections": json.dumps(detections)}},
        "scene": {"class_type": "CIELRSceneFromBoxes",
                  "inputs": {"image": ["small", 0], "boxes": ["sam3", 1], "labels": labels,
                             "box_format": "x0, y0, x1, y1", **scene_inputs}},
        "build": {"class_type": "CIELRBuildScene", "inputs": {"image": ["small", 0], "scene": ["scene", 0]}},
        "report": {"class_type": "PreviewAny", "inputs": {"source": ["scene", 1]}},
        "json": {"class_type": "PreviewAny", "inputs": {"source": ["build", 1]}},
    }


def test_core_sam3_boxes_become_a_scene_and_an_edit_stays_inside_its_mask(server, sd15_models):
    """SAM3 Detect's bboxes (BOUNDING_BOX) into Scene From Boxes: ids, labels, scores and boxes as detected; a plan
    on that scene edited by Inpaint Actions changes no pixel outside the MASK it returns."""
    from cielr_core.scene import scene_from_json
    from cielr_core.scene.external import FROM_BOX_SHAPE, MASK_ATTRIBUTE

    link_checkpoint(server, sd15_models)
    prompt = sam3_graph(SAM3_FOUND)
    prompt.update({
        "plan": {"class_type": "CIELRPlanFromJSON",
                 "inputs": {"scene": ["build", 0], "plan_json": json.dumps({"actions": [
                     {"op": "replace", "targets": [1], "prompt": "a floor lamp"}]})}},
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sd15_models.checkpoint.name}},
        "edit": INPAINT_SMALL,
        "save_in": {"class_type": "SaveImage", "inputs": {"images": ["small", 0], "filename_prefix": "cielr_sam3_in"}},
        "save_out": {"class_type": "SaveImage", "inputs": {"images": ["edit", 0], "filename_prefix": "cielr_sam3_out"}},
        "binary": {"class_type": "ThresholdMask", "inputs": {"mask": ["edit", 1], "value": 0.0}},
        **save_masks("binary", 0, "cielr_sam3_mask"),
    })
    outputs = ok(server, prompt, timeout=900)
    scene = scene_from_json(text(outputs, "json"))
    assert [(o.id, o.label) for o in scene.objects] == [(1, "lamp"), (2, "table")]
    assert [o.box for o in scene.objects] == [(10, 8, 50, 40), (70, 50, 120, 90)]
    assert [o.score for o in scene.objects] == pytest.approx([0.93, 0.61], abs=1e-6)
    assert all(o.attributes[MASK_ATTRIBUTE] == FROM_BOX_SHAPE for o in scene.objects)
    (before,), (after,) = saved(server, outputs, "save_in"), saved(server, outputs, "save_out")
    (mask,) = [m[..., 0] == 255 for m in saved(server, outputs, "cielr_sam3_mask")]
    changed = (after != before).any(axis=-1)
    assert changed.any() and mask[8:40, 10:50].all()
    assert not (changed & ~mask).any(), f"{int((changed & ~mask).sum())} pixels changed outside the MASK"
    requests.post(f"{server.url}/free", json={"unload_models": True, "free_memory": True}, timeout=60)


def test_core_sam3_boxes_with_sam_one_label_and_typed_scores(server):
    prompt = sam3_graph(SAM3_FOUND, labels="thing", scores="0.5")
    prompt["sam"] = {"class_type": "CIELRSAMLoader", "inputs": {"model_name": "tiny_sam.pth", "device": "auto"}}
    prompt["scene"]["inputs"]["segmenter"] = ["sam", 0]
    from cielr_core.scene import scene_from_json

    outputs = ok(server, prompt)
    scene = scene_from_json(text(outputs, "json"))
    assert [(o.id, o.label, o.score) for o in scene.objects] == [(1, "thing", 0.5), (2, "thing", 0.5)]
    assert "segmented by SAM" in text(outputs, "report")


def test_core_sam3_with_no_detections_says_so(server):
    error = error_of(server, sam3_graph([[]]))
    assert error["node_type"] == "CIELRSceneFromBoxes"
    assert "no boxes came in" in error["exception_message"] and "threshold" in error["exception_message"]
    error = error_of(server, sam3_graph(SAM3_FOUND * 2))  # boxes for two images, one photo
    assert "boxes for 2 images" in error["exception_message"]


def test_refine_scene_without_a_detector(server, scripted_server):
    scripted_server.answer({"note": "no speaker listed", "sufficient": False, "missing_labels": ["speaker"],
                            "search_within": None})
    prompt = masks_graph()
    prompt.update({
        "llm": {"class_type": "CIELRLLMRemote",
                "inputs": {"base_url": scripted_server.base_url, "model": "scripted", "api_key_env": "",
                           "temperature": 0.0, "seed": 0, "timeout": 30.0, "vision": False}},
        "refine": {"class_type": "CIELRRefineScene",
                   "inputs": {"image": ["photo", 0], "scene": ["build", 0], "llm": ["llm", 0],
                              "instruction": "Replace the speaker with a lamp.", "max_rounds": 3,
                              "box_threshold": 0.3, "text_threshold": 0.25}},
        "trace": {"class_type": "PreviewAny", "inputs": {"source": ["refine", 1]}},
        "ids": {"class_type": "CIELRSceneToMasks", "inputs": {"scene": ["refine", 0]}},
        "show_ids": {"class_type": "PreviewAny", "inputs": {"source": ["ids", 2]}},
    })
    outputs = ok(server, prompt)
    trace = text(outputs, "trace")
    assert "Would look for speaker in the whole image, but no detector is connected: nothing added." in trace
    assert "no detector is connected, so nothing was added" in trace
    assert text(outputs, "show_ids") == "1, 2, 3"
    assert len(scripted_server.requests) == 1


PLAN = {"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}, {"op": "remove", "targets": [2]}]}


def test_plan_to_masks_drives_core_sampler_nodes(server, sd15_models):
    """Plan To Masks -> CLIPTextEncode, SetLatentNoiseMask, KSampler (one run per action, through the list
    outputs) -> VAEDecode -> ImageCompositeMasked with the same mask. Every changed pixel lies inside
    the plan's masks, and Inpaint Actions on the same plan edits exactly the union of them."""
    link_checkpoint(server, sd15_models)
    w, h = SIZE
    prompt = {
        "photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "small": {"class_type": "ImageScale", "inputs": {"image": ["photo", 0], "upscale_method": "area",
                                                        "width": w, "height": h, "crop": "disabled"}},
        **rect_mask("m1", SIZE, (10, 8, 50, 40)), **rect_mask("m2", SIZE, (70, 50, 120, 90)),
        **batch(["m1", "m2"]),
        "scene": {"class_type": "CIELRSceneFromMasks",
                  "inputs": {"image": ["small", 0], "masks": ["batch", 0], "labels": "lamp, table"}},
        "build": {"class_type": "CIELRBuildScene", "inputs": {"image": ["small", 0], "scene": ["scene", 0]}},
        "plan": {"class_type": "CIELRPlanFromJSON", "inputs": {"scene": ["build", 0], "plan_json": json.dumps(PLAN)}},
        "regions": {"class_type": "CIELRPlanToMasks",
                    "inputs": {"scene": ["build", 0], "plan": ["plan", 0], "grow": 4, "feather": 3, "negative": "",
                               "background_prompt": "a wall", "recolor_denoise": 0.6, "image": ["small", 0]}},
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sd15_models.checkpoint.name}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ["regions", 5]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ["regions", 6]}},
        "latent": {"class_type": "VAEEncode", "inputs": {"pixels": ["small", 0], "vae": ["ckpt", 2]}},
        "noise_mask": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["latent", 0],
                                                                      "mask": ["regions", 4]}},
        "sample": {"class_type": "KSampler",
                   "inputs": {"model": ["ckpt", 0], "seed": 3, "steps": 1, "cfg": 5.0, "sampler_name": "euler",
                              "scheduler": "normal", "positive": ["pos", 0], "negative": ["neg", 0],
                              "latent_image": ["noise_mask", 0], "denoise": ["regions", 7]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "composite": {"class_type": "ImageCompositeMasked",
                      "inputs": {"destination": ["small", 0], "source": ["decode", 0], "x": 0, "y": 0,
                                 "resize_source": True, "mask": ["regions", 4]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["composite", 0], "filename_prefix": "cielr_p2m"}},
        "save_small": {"class_type": "SaveImage",
                       "inputs": {"images": ["small", 0], "filename_prefix": "cielr_p2m_in"}},
        # where each mask is above 0, exactly (MaskToImage alone would round faint feather weights to 0)
        "binary": {"class_type": "ThresholdMask", "inputs": {"mask": ["regions", 0], "value": 0.0}},
        **save_masks("binary", 0, "cielr_p2m_masks"),
        "union_binary": {"class_type": "ThresholdMask", "inputs": {"mask": ["regions", 1], "value": 0.0}},
        **save_masks("union_binary", 0, "cielr_p2m_union"),
        "prompts": {"class_type": "PreviewAny", "inputs": {"source": ["regions", 2]}},
        "negatives": {"class_type": "PreviewAny", "inputs": {"source": ["regions", 3]}},
        "engine": INPAINT_SMALL,
        **save_masks("engine", 1, "cielr_p2m_engine"),
    }
    outputs = ok(server, prompt, timeout=900)
    assert text(outputs, "prompts") == "a floor lamp\na wall" and text(outputs, "negatives") == "\ntable"
    (before,) = saved(server, outputs, "save_small")
    edited = saved(server, outputs, "save")
    masks = [m[..., 0] == 255 for m in saved(server, outputs, "cielr_p2m_masks")]
    (union,) = [m[..., 0] == 255 for m in saved(server, outputs, "cielr_p2m_union")]
    (engine,) = [m[..., 0] == 255 for m in saved(server, outputs, "cielr_p2m_engine")]
    assert len(edited) == 2 and len(masks) == 2  # one sampler run per action
    assert np.array_equal(union, masks[0] | masks[1])
    assert np.array_equal(engine, union), "Plan To Masks differs from what Inpaint Actions edits"
    for k, (image, mask) in enumerate(zip(edited, masks), 1):
        changed = (image != before).any(axis=-1)
        assert changed.any(), f"action {k} changed nothing"
        assert not (changed & ~mask).any(), f"action {k}: {int((changed & ~mask).sum())} pixels changed outside"
    requests.post(f"{server.url}/free", json={"unload_models": True, "free_memory": True}, timeout=60)
