"""The editing nodes inside a real ComfyUI server, with random SD1.5 checkpoints (reduced UNet, devkit/sd_models.py).

The scene comes from the perception nodes with the tiny models (thresholds 0, so objects 1 and 2
exist), the plan from CIELR Plan From JSON. Exactness is checked inside the graph in float32: two
ImageBlend "difference" nodes (a - b is 0 exactly when a == b) and ThresholdMask at 0 give a map
of every changed pixel, saved beside the node's MASK output.
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
from tests.fixtures.watch import SamplingStep, interrupt, run_watched

pytestmark = pytest.mark.slow

NODES = {
    "CIELRPlanFromJSON": ["CIELR_PLAN"],
    "CIELRInpaintActions": ["IMAGE", "MASK", "IMAGE", "STRING"],
    "CIELRActionMask": ["MASK", "STRING", "STRING", "FLOAT"],
}
PLAN = {"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"},
                    {"op": "remove", "targets": [2]}]}


@pytest.fixture(scope="module")
def editing_server(comfyui, sd15_models):
    """The shared server, with the random checkpoints linked into its model folders and a photo."""
    for sub, path in (("checkpoints", sd15_models.checkpoint), ("checkpoints", sd15_models.inpainting),
                      ("vae", sd15_models.vae16)):
        link_model(comfyui.base / "models", sub, path)
    (comfyui.base / "input").mkdir(exist_ok=True)
    shutil.copy(CIEBENCH / "0" / "0.png", comfyui.base / "input" / "cielr_edit_photo.png")
    yield comfyui
    requests.post(f"{comfyui.url}/free", json={"unload_models": True, "free_memory": True}, timeout=60)


def scene_nodes(gdino: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "cielr_edit_photo.png"}},
        "2": {"class_type": "CIELRGroundingDINOLoader",
              "inputs": {"model_name": gdino, "text_encoder": "bert-base-uncased", "device": "auto"}},
        "3": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": "tiny_sam.pth", "device": "auto"}},
        "4": {"class_type": "CIELRPerceive",
              "inputs": {"image": ["1", 0], "detector": ["2", 0], "segmenter": ["3", 0],
                         "labels": "tv, speaker, sofa", "box_threshold": 0.0, "text_threshold": 0.0}},
        "5": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["4", 0]}},
        "6": {"class_type": "CIELRPlanFromJSON", "inputs": {"scene": ["5", 0], "plan_json": json.dumps(PLAN)}},
    }


def edit_prompt(gdino: str, checkpoint: str, vae: str | None = None) -> dict:
    prompt = scene_nodes(gdino)
    prompt.update({
        "10": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "11": {"class_type": "CIELRInpaintActions",
               "inputs": {"image": ["1", 0], "scene": ["5", 0], "plan": ["6", 0], "model": ["10", 0],
                          "clip": ["10", 1], "vae": ["12", 0] if vae else ["10", 2], "seed": 5, "steps": 2,
                          "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "grow": 6, "feather": 4,
                          "context": 24, "working_size": 64, "negative": "", "background_prompt": "a wall",
                          "recolor_denoise": 0.6}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "cielr_edit"}},
        "21": {"class_type": "MaskToImage", "inputs": {"mask": ["11", 1]}},
        "22": {"class_type": "SaveImage", "inputs": {"images": ["21", 0], "filename_prefix": "cielr_edit_mask"}},
        "23": {"class_type": "PreviewAny", "inputs": {"source": ["11", 3]}},
        "24": {"class_type": "SaveImage", "inputs": {"images": ["11", 2], "filename_prefix": "cielr_edit_steps"}},
        # exact float32 change map: |in - out| via two clamped differences, any channel > 0
        "30": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["11", 0],
                                                      "blend_factor": 1.0, "blend_mode": "difference"}},
        "31": {"class_type": "ImageBlend", "inputs": {"image1": ["11", 0], "image2": ["1", 0],
                                                      "blend_factor": 1.0, "blend_mode": "difference"}},
        "32": {"class_type": "ImageBlend", "inputs": {"image1": ["30", 0], "image2": ["31", 0],
                                                      "blend_factor": 0.5, "blend_mode": "normal"}},
        "33": {"class_type": "ImageToMask", "inputs": {"image": ["32", 0], "channel": "red"}},
        "34": {"class_type": "ImageToMask", "inputs": {"image": ["32", 0], "channel": "green"}},
        "35": {"class_type": "ImageToMask", "inputs": {"image": ["32", 0], "channel": "blue"}},
        "36": {"class_type": "MaskComposite", "inputs": {"destination": ["33", 0], "source": ["34", 0],
                                                         "x": 0, "y": 0, "operation": "add"}},
        "37": {"class_type": "MaskComposite", "inputs": {"destination": ["36", 0], "source": ["35", 0],
                                                         "x": 0, "y": 0, "operation": "add"}},
        "38": {"class_type": "ThresholdMask", "inputs": {"mask": ["37", 0], "value": 0.0}},
        "39": {"class_type": "MaskToImage", "inputs": {"mask": ["38", 0]}},
        "40": {"class_type": "SaveImage", "inputs": {"images": ["39", 0], "filename_prefix": "cielr_edit_changed"}},
    })
    if vae:
        prompt["12"] = {"class_type": "VAELoader", "inputs": {"vae_name": vae}}
    return prompt


def _gdino(server) -> str:
    return json.loads((server.base / "models" / "meta.json").read_text())["gdino"]


def _saved(server, entry: dict, node: str, index: int = 0) -> np.ndarray:
    info = entry["outputs"][node]["images"][index]
    with Image.open(server.base / "output" / info["subfolder"] / info["filename"]) as im:
        return np.asarray(im.convert("RGB"))


def _run_edit(server, checkpoint: str) -> tuple[dict, str]:
    entry = server.run(edit_prompt(_gdino(server), checkpoint), timeout=900)
    assert execution_error(entry) is None, describe(execution_error(entry))
    return entry, entry["outputs"]["23"]["text"][0]


def _check_exact(server, entry: dict) -> None:
    photo = Image.open(server.base / "input" / "cielr_edit_photo.png")
    edited = _saved(server, entry, "20")
    assert edited.shape == (photo.size[1], photo.size[0], 3)  # the input's size (597 is no multiple of 8)
    mask = _saved(server, entry, "22")[..., 0]
    changed = _saved(server, entry, "40")[..., 0]
    assert set(np.unique(mask)) <= {0, 255} and set(np.unique(changed)) <= {0, 255}
    assert changed.any(), "the edit changed nothing"
    outside = (changed == 255) & (mask == 0)
    assert not outside.any(), f"{outside.sum()} changed pixels lie outside the output MASK"
    assert len(entry["outputs"]["24"]["images"]) == 2  # one preview per action
    assert len(entry["outputs"]["11"]["images"]) == 2  # and shown on the node


def test_object_info_lists_the_editing_nodes(editing_server, sd15_models):
    info = editing_server.object_info()
    for node, outputs in NODES.items():
        assert node in info, f"{node} missing from /object_info"
        assert info[node]["category"].startswith("CIELR/")
        assert list(info[node]["output"]) == outputs
        for name, spec in {**info[node]["input"]["required"], **info[node]["input"].get("optional", {})}.items():
            assert spec[1].get("tooltip"), f"{node}.{name} has no tooltip"
    inputs = list(info["CIELRInpaintActions"]["input"]["required"])
    assert inputs == ["image", "scene", "plan", "model", "clip", "vae", "seed", "steps", "cfg", "sampler_name",
                      "scheduler", "grow", "feather", "context", "working_size", "negative", "background_prompt",
                      "recolor_denoise"]  # released order: saved workflows depend on it
    optional = info["CIELRInpaintActions"]["input"]["optional"]
    # added later, optional, after the released inputs: verification, the family settings, custom sampling
    assert list(optional) == ["detector", "segmenter", "llm", "candidates", "retries", "guidance", "edit_mode",
                              "sampler", "sigmas", "guider"]
    assert [optional[k][0] for k in ("sampler", "sigmas", "guider")] == ["SAMPLER", "SIGMAS", "GUIDER"]
    assert optional["guidance"][1]["default"] == 0.0 and optional["edit_mode"][1]["default"] == "auto"
    assert optional["edit_mode"][1]["options"] == ["auto", "inpaint", "instruction edit"]
    assert sd15_models.checkpoint.name in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]


def test_two_actions_with_sd15(editing_server, sd15_models):
    entry, report = _run_edit(editing_server, sd15_models.checkpoint.name)
    _check_exact(editing_server, entry)
    assert "model SD15 (latent noise mask); family SD1.5" in report
    assert "action 1 (replace): 'a floor lamp', seed 5" in report and "action 2 (remove): 'a wall', seed 6" in report


def test_two_actions_with_an_inpainting_checkpoint(editing_server, sd15_models):
    requests.post(f"{editing_server.url}/free", json={"unload_models": True, "free_memory": True}, timeout=60)
    entry, report = _run_edit(editing_server, sd15_models.inpainting.name)
    _check_exact(editing_server, entry)
    assert "inpainting checkpoint: inpaint conditioning" in report
    requests.post(f"{editing_server.url}/free", json={"unload_models": True, "free_memory": True}, timeout=60)


def test_an_rgba_photo_goes_through_inpaint_actions(editing_server, sd15_models):
    """A photo with an alpha channel (Join Image with Alpha) is made RGB where it enters: the edit runs,
    and every pixel outside the MASK is the RGB photo's own."""
    prompt = edit_prompt(_gdino(editing_server), sd15_models.checkpoint.name)
    prompt["50"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["1", 1]}}
    prompt["11"]["inputs"]["image"] = ["50", 0]
    entry = editing_server.run(prompt, timeout=900)
    assert execution_error(entry) is None, describe(execution_error(entry))
    _check_exact(editing_server, entry)


def test_action_mask_node(editing_server):
    prompt = scene_nodes(_gdino(editing_server))
    prompt.update({
        "7": {"class_type": "CIELRActionMask",
              "inputs": {"scene": ["5", 0], "plan": ["6", 0], "index": 2, "grow": 0, "feather": 0,
                         "background_prompt": "a wall"}},
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "cielr_action_mask"}},
        "13": {"class_type": "PreviewAny", "inputs": {"source": ["7", 1]}},
        "14": {"class_type": "PreviewAny", "inputs": {"source": ["7", 2]}},
        "15": {"class_type": "PreviewAny", "inputs": {"source": ["7", 3]}},
        "16": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
    })
    entry = editing_server.run(prompt)
    assert execution_error(entry) is None, describe(execution_error(entry))
    from cielr_core.scene import scene_from_json

    scene = scene_from_json(entry["outputs"]["16"]["text"][0])
    mask = _saved(editing_server, entry, "9")[..., 0] > 127
    assert np.array_equal(mask, scene.get(2).mask)  # grow 0, feather 0: exactly object 2's mask
    assert entry["outputs"]["13"]["text"][0] == "a wall"
    assert scene.get(2).label in entry["outputs"]["14"]["text"][0]  # the removed label is negative
    assert float(entry["outputs"]["15"]["text"][0]) == 1.0

    prompt["7"]["inputs"]["index"] = 3
    error = execution_error(editing_server.run(prompt))
    assert error is not None and "index 3 is out of range; the plan has 2 action(s)" in error["exception_message"]


def test_unknown_ids_fail_before_sampling(editing_server, sd15_models):
    prompt = edit_prompt(_gdino(editing_server), sd15_models.checkpoint.name)
    prompt["6"]["inputs"]["plan_json"] = json.dumps({"actions": [{"op": "remove", "targets": [9999]}]})
    entry = editing_server.run(prompt)
    error = execution_error(entry)
    assert error is not None and error["node_type"] == "CIELRPlanFromJSON"
    assert "[9999] that are not in the scene" in error["exception_message"]
    assert "11" not in entry.get("outputs", {})


def test_model_vae_mismatch_is_named(editing_server, sd15_models):
    prompt = edit_prompt(_gdino(editing_server), sd15_models.checkpoint.name, vae=sd15_models.vae16.name)
    error = execution_error(editing_server.run(prompt))
    assert error is not None and error["node_type"] == "CIELRInpaintActions"
    message = error["exception_message"]
    assert "VAE does not belong to this MODEL" in message and "16 channels" in message and "SD15" in message


def test_cancel_stops_sampling(editing_server, sd15_models):
    """Cancel stops the node inside sampling (ComfyUI's progress hook raises there), not after it:
    once our node reports its first sampling step over the websocket, POST /interrupt."""
    prompt = edit_prompt(_gdino(editing_server), sd15_models.checkpoint.name)
    prompt["11"]["inputs"]["steps"] = 1000  # far longer than the test waits
    first_step = SamplingStep("11", at=1)
    event, _ = run_watched(editing_server, prompt, first_step, interrupt(editing_server))
    assert event["type"] == "execution_interrupted", event
    assert event["data"]["node_type"] == "CIELRInpaintActions"
    assert 1 <= first_step.highest < 20  # stopped within a few steps of 1000
