"""The perception nodes inside a real ComfyUI server, driven through its HTTP API."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from devkit.comfyui import describe, execution_error
from tests.conftest import CIEBENCH

pytestmark = pytest.mark.slow

NODES = {
    "CIELRGroundingDINOLoader": ["CIELR_DETECTOR"],
    "CIELRSAMLoader": ["CIELR_SEGMENTER"],
    "CIELRPerceive": ["CIELR_SCENE", "IMAGE"],
    "CIELRBuildScene": ["CIELR_SCENE", "STRING", "IMAGE", "STRING"],  # text came last, so old links hold
    "CIELRScenePreview": ["IMAGE"],
}


@pytest.fixture(scope="module")
def photo_name(comfyui) -> str:
    (comfyui.base / "input").mkdir(exist_ok=True)
    shutil.copy(CIEBENCH / "0" / "0.png", comfyui.base / "input" / "cielr_photo.png")
    return "cielr_photo.png"


def perception_prompt(photo: str, gdino: str, sam: str = "tiny_sam.pth") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "2": {"class_type": "CIELRGroundingDINOLoader",
              "inputs": {"model_name": gdino, "text_encoder": "bert-base-uncased", "device": "auto"}},
        "3": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": sam, "device": "auto"}},
        "4": {"class_type": "CIELRPerceive",
              "inputs": {"image": ["1", 0], "detector": ["2", 0], "segmenter": ["3", 0],
                         "labels": "tv, speaker, sofa", "box_threshold": 0.0, "text_threshold": 0.0}},
        "5": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["4", 0], "depth": ["1", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["5", 2], "filename_prefix": "cielr_scene"}},
        "8": {"class_type": "CIELRScenePreview", "inputs": {"image": ["1", 0], "scene": ["5", 0]}},
    }


def test_object_info_lists_the_nodes(comfyui):
    info = comfyui.object_info()
    for node, outputs in NODES.items():
        assert node in info, f"{node} missing from /object_info"
        assert info[node]["category"].startswith("CIELR/")
        assert list(info[node]["output"]) == outputs
        for name, spec in info[node]["input"]["required"].items():
            assert spec[1].get("tooltip"), f"{node}.{name} has no tooltip"
    # the loaders list what is in the model folders
    gdino_choices = info["CIELRGroundingDINOLoader"]["input"]["required"]["model_name"][1]["options"]
    assert json.loads((comfyui.base / "models" / "meta.json").read_text())["gdino"] in gdino_choices
    assert "tiny_sam.pth" in info["CIELRSAMLoader"]["input"]["required"]["model_name"][1]["options"]
    assert "bert-base-uncased" in info["CIELRGroundingDINOLoader"]["input"]["required"]["text_encoder"][1]["options"]


def test_perception_workflow_runs(comfyui, photo_name):
    gdino = json.loads((comfyui.base / "models" / "meta.json").read_text())["gdino"]
    entry = comfyui.run(perception_prompt(photo_name, gdino))
    assert execution_error(entry) is None, describe(execution_error(entry))
    outputs = entry["outputs"]

    from cielr_core.scene import scene_from_json

    scene = scene_from_json(outputs["6"]["text"][0])
    photo = Image.open(comfyui.base / "input" / photo_name)
    assert (scene.width, scene.height) == photo.size
    assert scene.relations is not None
    assert len(scene.objects) > 0  # thresholds 0: random weights still give boxes
    for obj in scene.objects:
        assert obj.mask.shape == (photo.size[1], photo.size[0]) and obj.mask.dtype == bool
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 <= x1 <= photo.size[0] and 0 <= y0 <= y1 <= photo.size[1]
        assert obj.depth is not None and 0.0 <= obj.depth <= 1.0

    saved = outputs["7"]["images"][0]
    preview = Image.open(comfyui.base / "output" / saved["subfolder"] / saved["filename"])
    assert preview.size == photo.size
    assert not np.array_equal(np.asarray(preview.convert("RGB")), np.asarray(photo.convert("RGB")))
    shown = outputs["8"]["images"][0]
    assert shown["type"] == "temp" and (comfyui.base / "temp" / shown["filename"]).is_file()


def test_missing_model_names_folders_and_server_survives(comfyui, photo_name):
    gdino = json.loads((comfyui.base / "models" / "meta.json").read_text())["gdino"]
    prompt = perception_prompt(photo_name, gdino)
    # A user with no SAM file: the list offers the official names, and running names the folders.
    sams = comfyui.base / "models" / "sams"
    hidden = sams.with_name("sams-hidden")
    sams.rename(hidden)
    try:
        listed = comfyui.object_info()["CIELRSAMLoader"]["input"]["required"]["model_name"][1]["options"]
        assert "sam_vit_b_01ec64.pth" in listed
        prompt["3"]["inputs"]["model_name"] = "sam_vit_b_01ec64.pth"
        entry = comfyui.run(prompt)
    finally:
        hidden.rename(sams)
    error = execution_error(entry)
    assert error is not None, "a missing model must stop the job"
    message = error["exception_message"]
    assert "sam_vit_b_01ec64.pth" in message
    assert str(comfyui.base / "models" / "sams") in message
    assert "segment-anything" in message  # where to download it
    # the server is still healthy and the next job runs (other labels, so nothing comes from the cache)
    prompt = perception_prompt(photo_name, gdino)
    prompt["4"]["inputs"]["labels"] = "lamp"
    entry = comfyui.run(prompt)
    assert execution_error(entry) is None, describe(execution_error(entry))
