"""The shipped workflows: listed in the Templates browser, loaded by the real frontend in headless
Chromium with no missing or broken nodes, converted by the frontend itself and run on the real
ComfyUI server with the test models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import CIEBENCH, REPO
from tests.fixtures.browser import open_comfyui
from tests.fixtures.comfyui import describe, execution_error

pytestmark = pytest.mark.slow

PACK = "comfyui-cielr"
WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def server(comfyui):
    requests.post(f"{comfyui.url}/settings/Comfy.TutorialCompleted", json=True, timeout=30)
    (comfyui.base / "input").mkdir(exist_ok=True)
    shutil.copy(CIEBENCH / "0" / "0.png", comfyui.base / "input" / "cielr_photo.png")
    return comfyui


@pytest.fixture(scope="module")
def page(server, browser):
    page = open_comfyui(browser, server.url)
    yield page
    page.close()


def load_workflow(page, name: str, corrupt: bool = False) -> dict:
    """Fetch the template from the URL the Templates browser uses and load it like a user would.
    ``corrupt`` renames the first node's type, to prove the checks see a missing node."""
    return page.evaluate("""async ([name, corrupt]) => {
        const r = await fetch(`/api/workflow_templates/comfyui-cielr/${name}.json`);
        if (!r.ok) throw new Error(`template ${name}: HTTP ${r.status}`);
        const wf = await r.json();
        if (corrupt) wf.nodes[0].type = "CIELRNoSuchNode";
        await window.app.loadGraphData(wf);
        const LG = window.LiteGraph;
        const nodes = window.app.graph._nodes;
        return {
            count: nodes.length,
            expected: wf.nodes.length,
            missing: nodes.filter(n => !LG.registered_node_types[n.type]).map(n => n.type),
            errors: nodes.filter(n => n.has_errors).map(n => n.type),
            links: Object.keys(window.app.graph.links).length ?? window.app.graph.links.size,
            expectedLinks: wf.links.length,
        };
    }""", [name, corrupt])


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


# What each workflow needs changed to run on the test models (widget values by node type).
TEST_WIDGETS = {
    "LoadImage": {"image": "cielr_photo.png"},
    "CIELRSAMLoader": {"model_name": "tiny_sam.pth"},
    "CIELRPerceive": {"box_threshold": 0.0, "text_threshold": 0.0},
}


def api_prompt(page, name: str, widgets: dict) -> dict:
    """Load the workflow, set the test models, and let the frontend convert it to the API format."""
    load_workflow(page, name)
    return page.evaluate("""async (widgets) => {
        for (const node of window.app.graph._nodes) {
            for (const [name, value] of Object.entries(widgets[node.type] || {})) {
                const w = node.widgets.find(w => w.name === name);
                if (!w) throw new Error(`${node.type} has no widget ${name}`);
                w.value = value;
            }
        }
        return (await window.app.graphToPrompt()).output;
    }""", widgets)


def outputs_by_type(prompt: dict, entry: dict, class_type: str) -> list[dict]:
    return [entry["outputs"][k] for k, v in prompt.items() if v["class_type"] == class_type and k in entry["outputs"]]


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


TWO_ACTIONS = ('{"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}, '
               '{"op": "remove", "targets": [2]}]}')


@pytest.fixture(scope="module")
def edit_server(server, sd15_models, smollm2_gguf):
    """The shared server with the random SD1.5 checkpoints and SmolLM2 where users put them."""
    for sub, path in (("checkpoints", sd15_models.checkpoint), ("checkpoints", sd15_models.inpainting),
                      ("LLM", smollm2_gguf)):
        folder = server.base / "models" / sub
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / path.name).exists():
            (folder / path.name).symlink_to(path)
    return server


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
        "CIELRInpaintActions": {"steps": 1, "working_size": 64, "context": 16, "seed": 7},
    }


def saved_image(server, output: dict) -> np.ndarray:
    image = output["images"][0]
    folder = "output" if image["type"] == "output" else "temp"
    return np.asarray(Image.open(server.base / folder / image["subfolder"] / image["filename"]).convert("RGB"))


def assert_untouched_outside_mask(server, prompt: dict, entry: dict) -> np.ndarray:
    """The saved edit has the input's size and equals it bit for bit wherever the MASK output is 0."""
    photo = np.asarray(Image.open(server.base / "input" / "cielr_photo.png").convert("RGB"))
    edited = saved_image(server, outputs_by_type(prompt, entry, "SaveImage")[0])
    mask_key = next(k for k, v in prompt.items() if v["class_type"] == "PreviewImage"
                    and v["inputs"]["images"][0] in [m for m, n in prompt.items() if n["class_type"] == "MaskToImage"])
    mask = saved_image(server, entry["outputs"][mask_key])[:, :, 0] > 0
    assert edited.shape == photo.shape
    assert mask.any(), "the plan edited nothing"
    assert np.array_equal(edited[~mask], photo[~mask]), "pixels outside the MASK output changed"
    return mask


@pytest.mark.parametrize("name", [n for n in WORKFLOWS if n != "cielr_perception"])
def test_edit_workflow_runs(edit_server, page, name, sd15_models, llama_server, smollm2_gguf):
    from cielr_core.plan import Plan

    checkpoint = sd15_models.inpainting if "inpaint_model" in name else sd15_models.checkpoint
    prompt = api_prompt(page, name, edit_widgets(edit_server, sd15_models, llama_server, smollm2_gguf, checkpoint))
    entry = edit_server.run(prompt, timeout=1200)
    assert execution_error(entry) is None, describe(execution_error(entry))
    assert_untouched_outside_mask(edit_server, prompt, entry)
    decompose = [k for k, v in prompt.items() if v["class_type"] == "CIELRDecompose"]
    if decompose:  # the LLM's plan is shown and valid
        plan_text = next(entry["outputs"][k]["text"][0] for k, v in prompt.items()
                         if v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] in decompose)
        assert Plan.model_validate_json(plan_text).actions
