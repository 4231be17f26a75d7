"""The shipped workflows: listed in the Templates browser, loaded by the real frontend in headless
Chromium with no missing or broken nodes, converted by the frontend itself and run on the real
ComfyUI server with the test models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from devkit.comfyui import describe, execution_error
from tests.conftest import REPO
from tests.fixtures.workflows import (
    TEST_WIDGETS,
    TWO_ACTIONS,
    api_prompt,
    load_workflow,
    outputs_by_type,
    saved_image,
)

pytestmark = pytest.mark.slow

PACK = "comfyui-cielr"
WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
ARTIFACTS = REPO / "test-artifacts"


def missing_nodes_dialog(page) -> bool:
    return page.get_by_text("This workflow has missing nodes").count() > 0


def validation_complaints(page) -> list[str]:
    """The frontend checks a loaded file against its schema and shows what does not fit."""
    body = page.inner_text("body")
    return [line for line in body.splitlines() if "Expected" in line and "received" in line]


def test_templates_endpoint_lists_every_workflow(server):
    assert WORKFLOWS, "no workflow is shipped"
    listed = requests.get(f"{server.url}/workflow_templates", timeout=30).json()
    assert sorted(listed[PACK]) == WORKFLOWS
    for name in WORKFLOWS:
        wf = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        assert (REPO / "workflows" / f"{name}.jpg").is_file(), f"{name} has no thumbnail"
        assert wf["models"] and all({"name", "url", "directory"} <= set(m) for m in wf["models"])
        text = json.dumps(wf)
        assert "sk-" not in text and "api_key\": \"" not in text.lower()


def test_templates_browser_shows_the_pack(page):
    page.evaluate("async () => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(PACK, exact=True).first.click()
    page.wait_for_timeout(1000)
    body = page.inner_text("body")
    for name in WORKFLOWS:
        assert name in body, f"{name} is not shown under {PACK} in the Templates browser"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "templates_browser.png"))
    page.keyboard.press("Escape")


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_loads_without_missing_or_broken_nodes(page, name):
    result = load_workflow(page, name)
    assert result["missing"] == [], f"missing node types: {result['missing']}"
    assert result["errors"] == []
    assert result["count"] == result["expected"]
    assert result["links"] == result["expectedLinks"]
    page.wait_for_timeout(500)
    assert not missing_nodes_dialog(page)
    assert validation_complaints(page) == []
    assert page.page_errors == [], page.page_errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_the_checks_see_a_missing_node(page):
    result = load_workflow(page, WORKFLOWS[0], corrupt=True)
    assert result["missing"] == ["CIELRNoSuchNode"]
    page.wait_for_timeout(1000)
    assert missing_nodes_dialog(page)
    page.keyboard.press("Escape")


@pytest.mark.parametrize("name", [n for n in WORKFLOWS if n == "cielr_perception"])
def test_perception_workflow_runs(server, page, name):
    from cielr_core.scene import scene_from_json

    gdino = json.loads((server.base / "models" / "meta.json").read_text())["gdino"]
    widgets = {**TEST_WIDGETS, "CIELRGroundingDINOLoader": {"model_name": gdino}}
    prompt = api_prompt(page, name, widgets)
    entry = server.run(prompt)
    assert execution_error(entry) is None, describe(execution_error(entry))
    photo = Image.open(server.base / "input" / "cielr_photo.png")
    scene = scene_from_json(outputs_by_type(prompt, entry, "PreviewAny")[0]["text"][0])
    assert (scene.width, scene.height) == photo.size and scene.objects
    shown = outputs_by_type(prompt, entry, "PreviewImage")[0]["images"][0]
    overlay = Image.open(Path(server.base) / "temp" / shown["subfolder"] / shown["filename"])
    assert overlay.size == photo.size
    assert not np.array_equal(np.asarray(overlay.convert("RGB")), np.asarray(photo.convert("RGB")))


def edit_widgets(server, sd15_models, llama_server, smollm2_gguf, checkpoint) -> dict:
    gdino = json.loads((server.base / "models" / "meta.json").read_text())["gdino"]
    return {
        **TEST_WIDGETS,
        "CIELRGroundingDINOLoader": {"model_name": gdino},
        "CheckpointLoaderSimple": {"ckpt_name": checkpoint.name},
        "CIELRLLMRemote": {"base_url": llama_server.base_url, "model": "smollm2", "timeout": 600.0},
        "CIELRLLMLocal": {"model": smollm2_gguf.name, "device": "cpu"},
        "CIELRRefineScene": {"max_rounds": 1, "box_threshold": 0.0, "text_threshold": 0.0},
        "CIELRPlanFromJSON": {"plan_json": TWO_ACTIONS},
        # one candidate, no retry: best of N is proven in test_verify_comfyui; here the graph and its verdicts
        "CIELRInpaintActions": {"steps": 1, "working_size": 64, "context": 16, "seed": 7, "candidates": 1,
                                "retries": 0},
        "KSampler": {"steps": 1, "seed": 7},  # the core sampler nodes a plan drives (cielr_bring_your_own_masks)
    }


def assert_untouched_outside_mask(server, prompt: dict, entry: dict, photo_name: str = "cielr_photo.png") -> np.ndarray:
    """The saved edit has the input's size and equals it bit for bit wherever the MASK output is 0."""
    photo = np.asarray(Image.open(server.base / "input" / photo_name).convert("RGB"))
    edited = saved_image(server, outputs_by_type(prompt, entry, "SaveImage")[0])
    mask_key = next(k for k, v in prompt.items() if v["class_type"] == "PreviewImage"
                    and v["inputs"]["images"][0] in [m for m, n in prompt.items() if n["class_type"] == "MaskToImage"])
    mask = saved_image(server, entry["outputs"][mask_key])[:, :, 0] > 0
    assert edited.shape == photo.shape
    assert mask.any(), "the plan edited nothing"
    assert np.array_equal(edited[~mask], photo[~mask]), "pixels outside the MASK output changed"
    return mask


# Workflows that sample the whole photo with core nodes (not crops at a working size) run on a small copy
# of it: on a CPU, full-size SD1.5 costs minutes per action there and proves nothing more.
WHOLE_PHOTO = {"cielr_bring_your_own_masks"}
SMALL_PHOTO = "cielr_photo_small.png"
# cielr_edit_flux_fill needs Flux's T5-XXL (DualCLIPLoader), too big for the tests: its loaders and
# the Flux Fill path run in tests/test_families_comfyui.py with random Flux models
NOT_RUN_HERE = ("cielr_perception", "cielr_edit_flux_fill")


@pytest.mark.parametrize("name", [n for n in WORKFLOWS if n not in NOT_RUN_HERE])
def test_edit_workflow_runs(edit_server, page, name, sd15_models, llama_server, smollm2_gguf):
    from cielr_core.plan import Plan

    checkpoint = sd15_models.inpainting if "inpaint_model" in name else sd15_models.checkpoint
    widgets = edit_widgets(edit_server, sd15_models, llama_server, smollm2_gguf, checkpoint)
    photo_name = "cielr_photo.png"
    if name in WHOLE_PHOTO:
        photo_name = SMALL_PHOTO
        with Image.open(edit_server.base / "input" / "cielr_photo.png") as im:
            im.convert("RGB").resize((200, 150), Image.LANCZOS).save(edit_server.base / "input" / SMALL_PHOTO)
        widgets["LoadImage"] = {"image": SMALL_PHOTO}
    prompt = api_prompt(page, name, widgets)
    entry = edit_server.run(prompt, timeout=1200)
    assert execution_error(entry) is None, describe(execution_error(entry))
    assert_untouched_outside_mask(edit_server, prompt, entry, photo_name)
    decompose = [k for k, v in prompt.items() if v["class_type"] == "CIELRDecompose"]
    if decompose:  # the LLM's plan is shown and valid
        plan_text = next(entry["outputs"][k]["text"][0] for k, v in prompt.items()
                         if v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] in decompose)
        assert Plan.model_validate_json(plan_text).actions
    for key in [k for k, v in prompt.items() if v["class_type"] == "CIELRVerifyEdit"]:  # verdicts, one per action
        shown = next(entry["outputs"][k]["text"][0] for k, v in prompt.items()
                     if v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] == key)
        verdict = json.loads(shown)
        assert verdict["status"] in ("passed", "failed") and verdict["actions"]
        assert all(a["status"] in ("passed", "failed", "not verified") for a in verdict["actions"])


@pytest.mark.parametrize("name", [n for n in WORKFLOWS
                                  if "CIELRRefineScene" in (REPO / "workflows" / f"{n}.json").read_text()])
def test_saved_refine_scene_keeps_its_detector_links(page, name):
    """Refine Scene's detector and segmenter became optional inputs (they moved after the widgets); a
    workflow saved before still wires them to the loaders. A lost link would not fail a run: Refine
    would quietly run without a detector."""
    prompt = api_prompt(page, name, TEST_WIDGETS)
    for refine in (v for v in prompt.values() if v["class_type"] == "CIELRRefineScene"):
        for name_, loader in (("detector", "CIELRGroundingDINOLoader"), ("segmenter", "CIELRSAMLoader")):
            source = refine["inputs"].get(name_)
            assert source and prompt[source[0]]["class_type"] == loader, f"{name_} is not linked to {loader}"
