"""Workflows saved with the version before the nodes moved to ComfyUI's V3 schema (tests/data/
legacy_workflows, the files it shipped) load in the real frontend with every CIELR widget value in its
own place, and run through POST /prompt unchanged but for the test models and inputs (test_an_old_workflow_runs).

That version's LLM nodes had a "control after generate" widget after their seed, so those files hold
one value more than the nodes have now; web/cielr_seeds.js drops it while the workflow loads."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from devkit.comfyui import describe, execution_error
from tests.conftest import REPO
from tests.fixtures.llm_servers import Reply, first_enum, schema_name
from tests.fixtures.workflows import FAST_INPAINT, TEST_WIDGETS, TWO_ACTIONS, loaded_as_api_prompt

pytestmark = pytest.mark.slow

LEGACY = REPO / "tests" / "data" / "legacy_workflows"
NAMES = sorted(p.stem for p in LEGACY.glob("*.json"))
RECORDED = json.loads((REPO / "tests" / "data" / "object_info_before_v3.json").read_text())
CONTROL = "control_after_generate"


def old_widget_names(node_type: str) -> list[str]:
    """The widgets that version's frontend made for a CIELR node, in order: one per widget input, and the
    control the frontend added after any INT input named seed."""
    spec, names = RECORDED[node_type], []
    for section in ("required", "optional"):
        for name in spec["input_order"].get(section, []):
            kind, *rest = spec["input"][section][name]
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                names.append(name)
                if kind == "INT" and ((rest and rest[0].get(CONTROL)) or name in ("seed", "noise_seed")):
                    names.append(CONTROL)
    return names


def saved_values(workflow: dict) -> dict[int, dict[str, object]]:
    """{node id: {widget name: value}} of the CIELR nodes, as that version read the file."""
    out = {}
    for node in workflow["nodes"]:
        if node["type"].startswith("CIELR") and node.get("widgets_values"):
            names = old_widget_names(node["type"])
            assert len(names) == len(node["widgets_values"]), node["type"]
            out[node["id"]] = dict(zip(names, node["widgets_values"]))
    return out


def load_file(page, workflow: dict) -> dict:
    """Load a workflow file as a user opening it would, and read back what the frontend made of it."""
    return page.evaluate("""async (wf) => {
        await window.app.loadGraphData(structuredClone(wf));
        const LG = window.LiteGraph;
        const nodes = window.app.graph._nodes;
        return {
            missing: nodes.filter(n => !LG.registered_node_types[n.type]).map(n => n.type),
            errors: nodes.filter(n => n.has_errors).map(n => n.type),
            count: nodes.length,
            links: Object.keys(window.app.graph.links).length ?? window.app.graph.links.size,
            widgets: Object.fromEntries(nodes.map(n => [n.id, Object.fromEntries(
                (n.widgets ?? []).filter(w => w.serialize !== false).map(w => [w.name, w.value]))])),
            extensions: window.app.extensions.map(e => e.name),
        };
    }""", workflow)


def same(a, b) -> bool:
    return math.isclose(a, b) if isinstance(a, float) or isinstance(b, float) else a == b


@pytest.mark.parametrize("name", NAMES)
def test_an_old_workflow_loads_with_every_widget_value_in_its_place(page, name):
    workflow = json.loads((LEGACY / f"{name}.json").read_text())
    loaded = load_file(page, workflow)
    assert loaded["missing"] == [] and loaded["errors"] == [] and page.page_errors == [], loaded
    assert loaded["count"] == len(workflow["nodes"]) and loaded["links"] == len(workflow["links"])
    assert "CIELR.SeedsWithoutControl" in loaded["extensions"]
    for node_id, saved in saved_values(workflow).items():
        now = loaded["widgets"][str(node_id)]
        for widget, value in saved.items():
            if widget == CONTROL and widget not in now:
                continue  # the LLM seeds have no control any more: the saved choice is dropped
            assert widget in now and same(now[widget], value), f"node {node_id} {widget}: {value!r} -> {now}"


def test_the_fixed_llm_seed_drops_exactly_the_stale_control(page):
    """The values after an LLM seed land where they belong only because the stale control is dropped."""
    workflow = json.loads((LEGACY / "cielr_local_llm_inpaint_model.json").read_text())
    node = next(n for n in workflow["nodes"] if n["type"] == "CIELRLLMLocal")
    assert node["widgets_values"][3:5] == [0, "randomize"]  # seed, then the control that version saved
    node["widgets_values"][2] = 0.35  # temperature; max_tokens follows the control
    widgets = load_file(page, workflow)["widgets"][str(node["id"])]
    assert widgets["temperature"] == 0.35 and widgets["seed"] == 0
    assert widgets["max_tokens"] == node["widgets_values"][5] and CONTROL not in widgets


def api_prompt(page, workflow: dict, widgets: dict) -> dict:
    load_file(page, workflow)
    return loaded_as_api_prompt(page, widgets)


# cielr_edit_flux_fill needs Flux's T5-XXL, too big for the tests (its path runs in test_families_comfyui)
RUN = [n for n in NAMES if n != "cielr_edit_flux_fill"]
TINY_PHOTO = "cielr_photo_tiny.png"


def scripted_llm(body: dict) -> Reply:
    """Labels, then a plan that replaces the first object the answer's schema allows."""
    if schema_name(body) == "LabelList":
        return Reply(content=json.dumps({"labels": ["lamp", "tv"]}))
    target = first_enum(body["response_format"]["json_schema"]["schema"])
    return Reply(content=json.dumps({"actions": [{"op": "replace", "targets": [target], "prompt": "a lamp"}]}))


@pytest.fixture(scope="module")
def tiny_photo(edit_server) -> str:
    with Image.open(edit_server.base / "input" / "cielr_photo.png") as im:
        im.convert("RGB").resize((96, 72)).save(edit_server.base / "input" / TINY_PHOTO)
    return TINY_PHOTO


@pytest.mark.parametrize("name", RUN)
def test_an_old_workflow_runs(edit_server, page, name, tiny_photo, sd15_models, scripted_server, smollm2_gguf):
    """What an old file proves is that its graph, with its values, runs: the models, the photo and the answers
    around it are the cheapest that run every node. A scripted LLM server answers at once; the local LLM node
    runs SmolLM2 (its saved values in use), and Refine Scene asks it nothing (no rounds: its slowest answer;
    the rounds run in test_workflows.py). A tiny photo keeps the scene JSON that old perception files show
    small: at full size it is megabytes, which the open page then takes seconds to read. Every file loads the
    plain SD1.5, so it loads once (the inpainting path: test_workflows.py)."""
    scripted_server.responder = scripted_llm
    gdino = json.loads((edit_server.base / "models" / "meta.json").read_text())["gdino"]
    widgets = {
        **TEST_WIDGETS,
        "LoadImage": {"image": tiny_photo},
        "CIELRGroundingDINOLoader": {"model_name": gdino},
        "CheckpointLoaderSimple": {"ckpt_name": sd15_models.checkpoint.name},
        "CIELRLLMRemote": {"base_url": scripted_server.base_url, "model": "scripted", "timeout": 600.0},
        "CIELRLLMLocal": {"model": smollm2_gguf.name, "device": "cpu"},
        "CIELRRefineScene": {"max_rounds": 0, "box_threshold": 0.0, "text_threshold": 0.0},
        "CIELRPlanFromJSON": {"plan_json": TWO_ACTIONS},
        "CIELRInpaintActions": FAST_INPAINT,
        "KSampler": {"steps": 1, "seed": 7},
    }
    prompt = api_prompt(page, json.loads((LEGACY / f"{name}.json").read_text()), widgets)
    entry = edit_server.run(prompt, timeout=1200)
    assert execution_error(entry) is None, describe(execution_error(entry))
    shown = {prompt[k]["class_type"] for k in entry["outputs"]}
    assert shown & {"SaveImage", "PreviewImage", "PreviewAny"}, f"nothing came out: {shown}"
    for key in (k for k, v in prompt.items() if v["class_type"] in ("CIELRInpaintActions", "CIELRScenePreview")):
        assert entry["outputs"][key]["images"], "the node shows its previews"  # one per action for Inpaint Actions
