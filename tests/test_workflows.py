"""The shipped workflows: listed in the Templates browser, loaded by the real frontend in headless
Chromium with no missing or broken nodes, converted by the frontend itself and run on the real
ComfyUI server with the test models."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from devkit.comfyui import describe, execution_error
from tests.conftest import REPO
from tests.fixtures.browser import open_comfyui
from tests.fixtures.workflows import (
    FAST_INPAINT,
    TEST_WIDGETS,
    TWO_ACTIONS,
    api_prompt,
    load_workflow,
    outputs_by_type,
    saved_image,
)

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "scripts"))  # the workflows' builder and specs

PACK = "comfyui-cielr"
TITLE_HEIGHT = 30  # LiteGraph's node title bar, in graph units
TEMPLATES = REPO / "example_workflows"
WORKFLOWS = sorted(p.stem for p in TEMPLATES.glob("*.json"))
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
        wf = json.loads((TEMPLATES / f"{name}.json").read_text())
        assert (TEMPLATES / f"{name}.jpg").is_file(), f"{name} has no thumbnail"
        text = json.dumps(wf)
        assert "sk-" not in text and "api_key\": \"" not in text.lower()
        served = requests.get(f"{server.url}/api/workflow_templates/{PACK}/{name}.json", timeout=30)
        assert served.ok and served.json() == wf


def test_templates_sit_in_the_one_folder_every_core_serves():
    """0.3.75 serves the first of example_workflows, example, examples, workflow, workflows; newer cores
    every top-level folder whose name holds "example" or "workflow". Only one may match, or a newer core
    serves two folders under one URL."""
    matching = [p.name for p in REPO.iterdir() if p.is_dir() and ("example" in p.name.lower()
                                                                 or "workflow" in p.name.lower())]
    assert matching == ["example_workflows"]


def declared_models(wf: dict) -> list[dict]:
    """The models a frontend reads: the workflow's own list and each node's properties.models."""
    return wf.get("models", []) + [m for n in wf["nodes"] for m in n.get("properties", {}).get("models", [])]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_model_file_a_widget_names_is_declared_with_a_download_link(name):
    wf = json.loads((TEMPLATES / f"{name}.json").read_text())
    declared = {m["name"]: m for m in declared_models(wf)}
    for node in wf["nodes"]:
        for model in node.get("properties", {}).get("models", []):  # a node declares what its widgets name
            assert model["name"] in node["widgets_values"], (node["type"], model["name"])
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.endswith((".pth", ".safetensors")):
                assert value in declared, f"{node['type']} names {value} but the workflow declares no link"
        if node["type"] == "CIELRGroundingDINOLoader":  # the text encoder is a folder: its weights file
            assert "model.safetensors" in declared
    for model in declared.values():
        assert set(model) == {"name", "url", "directory"}
        # a link that downloads the file itself, from a host the frontend accepts
        assert model["url"].startswith("https://huggingface.co/") and "/resolve/" in model["url"], model
        assert model["url"].endswith("/" + model["name"]), model


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


def edit_widgets(server, llm: tuple[str, str], smollm2_gguf, checkpoint) -> dict:
    """The test models, and ``llm`` (base URL, model name) for the remote LLM node."""
    gdino = json.loads((server.base / "models" / "meta.json").read_text())["gdino"]
    return {
        **TEST_WIDGETS,
        "CIELRGroundingDINOLoader": {"model_name": gdino},
        "CheckpointLoaderSimple": {"ckpt_name": checkpoint.name},
        "CIELRLLMRemote": {"base_url": llm[0], "model": llm[1], "timeout": 600.0},
        "CIELRLLMLocal": {"model": smollm2_gguf.name, "device": "cpu"},
        "CIELRRefineScene": {"max_rounds": 1, "box_threshold": 0.0, "text_threshold": 0.0},
        "CIELRPlanFromJSON": {"plan_json": TWO_ACTIONS},
        "CIELRInpaintActions": FAST_INPAINT,  # here the graph and its verdicts
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
# of it: on a CPU, full-size SD1.5 costs minutes per action there and proves nothing more. Its sides are no
# multiples of 8, so the VAE's output is still stretched back to the photo's size.
WHOLE_PHOTO = {"cielr_bring_your_own_masks"}
SMALL_PHOTO = "cielr_photo_small.png"
# cielr_edit_flux_fill needs Flux's T5-XXL (DualCLIPLoader), too big for the tests: its loaders and
# the Flux Fill path run in tests/test_families_comfyui.py with random Flux models
NOT_RUN_HERE = ("cielr_perception", "cielr_edit_flux_fill")
# The plain SD1.5 ones first, then the inpainting one: ComfyUI keeps a loader's output while the next
# prompt loads the same file, so each checkpoint is loaded once
EDIT_RUNS = sorted((n for n in WORKFLOWS if n not in NOT_RUN_HERE), key=lambda n: ("inpaint_model" in n, n))


def small_photo(server) -> str:
    with Image.open(server.base / "input" / "cielr_photo.png") as im:
        im.convert("RGB").resize((100, 75), Image.LANCZOS).save(server.base / "input" / SMALL_PHOTO)
    return SMALL_PHOTO


@pytest.mark.parametrize("name", [n for n in WORKFLOWS
                                  if "CIELRRefineScene" in (TEMPLATES / f"{n}.json").read_text()])
def test_saved_refine_scene_keeps_its_detector_links(page, name):
    """Refine Scene's detector and segmenter became optional inputs (they moved after the widgets); a
    workflow saved before still wires them to the loaders. A lost link would not fail a run: Refine
    would quietly run without a detector."""
    prompt = api_prompt(page, name, TEST_WIDGETS)
    for refine in (v for v in prompt.values() if v["class_type"] == "CIELRRefineScene"):
        for name_, loader in (("detector", "CIELRGroundingDINOLoader"), ("segmenter", "CIELRSAMLoader")):
            source = refine["inputs"].get(name_)
            assert source and prompt[source[0]]["class_type"] == loader, f"{name_} is not linked to {loader}"


# ------------------------------------------------------------------------ thumbnails a person can read

def title_boxes(wf: dict, scale: float, offset: list[float]) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Each node's title text box in a picture of the canvas at ``scale`` and ``offset``: the title starts
    after the collapse dot, one title bar's height in, and runs about 7 px a letter at zoom 1."""
    boxes = []
    for node in wf["nodes"]:
        title = node.get("title") or node["type"]
        x, y = node["pos"]
        left = (x + offset[0] + TITLE_HEIGHT) * scale
        right = min(x + node["size"][0], x + TITLE_HEIGHT + 7 * len(title)) + offset[0]
        top, bottom = (y - TITLE_HEIGHT + offset[1] + 6) * scale, (y + offset[1] - 6) * scale
        boxes.append((title, (round(left), round(top), round(right * scale), round(bottom))))
    return boxes


def has_title_text(gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Light strokes on the title bar's own colour: the drawn title. The low-detail drawing leaves the
    bar one flat colour."""
    left, top, right, bottom = box
    crop = gray[top:bottom, left:right].astype(np.int16)
    if crop.size == 0:
        return False
    strokes = crop > np.median(crop) + 45
    return 0.02 < strokes.mean() < 0.6 and strokes.any(axis=0).mean() > 0.3


def titles_shown(picture: Image.Image, wf: dict) -> list[bool]:
    gray = np.asarray(picture.convert("L"))
    ds = wf["extra"]["ds"]
    return [has_title_text(gray, box) for _, box in title_boxes(wf, ds["scale"], ds["offset"])]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_thumbnail_shows_every_node_title(name):
    wf = json.loads((TEMPLATES / f"{name}.json").read_text())
    with Image.open(TEMPLATES / f"{name}.jpg") as picture:
        shown = titles_shown(picture, wf)
    blank = [title for (title, _), ok in zip(title_boxes(wf, 1, [0, 0]), shown, strict=True) if not ok]
    assert not blank, f"no title text drawn in the thumbnail for {blank}"


def test_the_title_check_sees_the_low_detail_drawing(page):
    """The same view drawn by the live frontend: with detail the check finds every title, in the low-detail
    drawing (what a zoomed-out canvas shows) none."""
    from build_workflows import CANVAS_ONLY_CSS

    name = "cielr_manual_plan"
    wf = json.loads((TEMPLATES / f"{name}.json").read_text())
    with Image.open(TEMPLATES / f"{name}.jpg") as picture:
        size = picture.size
    load_workflow(page, name)
    # Added by hand: Playwright's add_style_tag fails on any CSP violation reported meanwhile, and the
    # frontend's own request to api.comfy.org (after the Templates browser opened) is one
    style = page.evaluate_handle("""css => {
        const el = document.createElement('style'); el.textContent = css; document.head.append(el); return el;
    }""", CANVAS_ONLY_CSS)
    page.set_viewport_size({"width": size[0], "height": size[1]})
    shots = {}
    try:
        for detail, font in (("full", 8), ("low", 1000)):  # the smallest font drawn in full, in pixels
            page.evaluate("""([ds, font]) => {
                const canvas = window.app.canvas;
                canvas.resize();
                canvas.ds.scale = ds.scale; canvas.ds.offset = [...ds.offset];
                canvas.min_font_size_for_lod = font;
                canvas.setDirty(true, true); canvas.draw(true, true);
            }""", [wf["extra"]["ds"], font])
            shots[detail] = Image.open(io.BytesIO(page.screenshot()))
    finally:
        page.evaluate("() => { window.app.canvas.min_font_size_for_lod = 8 }")
        style.evaluate("el => el.remove()")
        page.set_viewport_size({"width": 1600, "height": 1000})
    assert all(titles_shown(shots["full"], wf))
    assert not any(titles_shown(shots["low"], wf))


# ------------------------------------------------------------------------ missing models offered for download

def listed(server, folder: str) -> list[str]:
    """The files ComfyUI lists in a model folder, from the endpoint the frontend compares a declared model's
    name with."""
    answer = requests.get(f"{server.url}/api/experiment/models/{folder}", timeout=30)
    return [m["name"] for m in answer.json()] if answer.ok else []  # 404: a folder this server does not know


def test_an_absent_model_is_offered_for_download_and_a_present_one_is_not(page, server, tmp_path):
    """Other tests add model files to the shared server's folders: the test sets aside the declared .pth
    files and the checkpoint it finds there, so that they are surely absent, and expects exactly the absent
    declared models offered."""
    name = "cielr_manual_plan"
    wf = json.loads((TEMPLATES / f"{name}.json").read_text())
    declared = list({m["url"]: m for m in declared_models(wf)}.values())  # the frontend asks once per link
    checkpoint = next(m for m in declared if m["directory"] == "checkpoints")
    folder = server.base / "models" / checkpoint["directory"]
    folder.mkdir(parents=True, exist_ok=True)

    missing_models = page.locator(".p-dialog").filter(has_text="Missing Models")

    def close_dialog() -> None:
        """Close the Missing Models dialog and wait until it is gone: a workflow loaded while the last one is
        still closing gets no dialog of its own."""
        page.keyboard.press("Escape")
        missing_models.first.wait_for(state="detached", timeout=10_000)

    def offered() -> dict[str, dict]:
        """Load the workflow as a user would; the dialog's entries, by label, with their download button."""
        close_dialog()  # one an earlier test's load left open
        load_workflow(page, name)
        missing_models.wait_for(timeout=30_000)
        entries = {}
        for item in missing_models.locator(".comfy-missing-models li").all():
            button = item.get_by_role("button", name="Download")
            entries[item.inner_text().splitlines()[0].strip()] = {
                "url": button.get_attribute("title"), "enabled": button.is_enabled()}
        close_dialog()
        return entries

    def absent() -> set[str]:
        return {f"{m['directory']} / {m['name']}" for m in declared if m["name"] not in listed(server, m["directory"])}

    pth = [m for m in declared if m["name"].endswith(".pth")]
    assert pth, "the workflow declares no .pth file"
    aside = [(server.base / "models" / m["directory"] / m["name"], tmp_path / m["name"]) for m in [*pth, checkpoint]]
    aside = [(path, away) for path, away in aside if path.is_symlink() or path.exists()]
    for path, away in aside:
        path.rename(away)
    label = f"{checkpoint['directory']} / {checkpoint['name']}"
    present = folder / checkpoint["name"]
    try:
        expected = absent()
        assert label in expected and {f"{m['directory']} / {m['name']}" for m in pth} <= expected
        entries = offered()
        assert set(entries) == expected, entries
        assert entries[label] == {"url": checkpoint["url"], "enabled": True}, entries
        # .pth files are listed too, with their folder and link (this frontend downloads only .safetensors itself)
        assert all(entries[f"{m['directory']} / {m['name']}"]["url"] == m["url"] for m in pth), entries
        present.write_bytes(b"")  # the frontend asks the server which files each folder holds, by name
        entries = offered()
        assert set(entries) == expected - {label}, entries
    finally:
        present.unlink(missing_ok=True)
        for path, away in aside:
            away.rename(path)


# ------------------------------------------------------------------ one run each; a second Queue runs only what changed

SAMPLERS = ("CIELRInpaintActions", "KSampler")  # the nodes whose seed re-rolls after each Queue


def queue_like_a_user(page, server=None) -> tuple[dict, dict | None]:
    """Press Queue: the prompt the frontend sends, and (with a ``server``) its history entry once it ran.
    Without one, the server is not asked: the frontend gets the answer of a queued prompt."""
    def accept(route):
        route.fulfill(json={"prompt_id": "not-run", "number": 0, "node_errors": {}})

    if server is None:
        page.route("**/api/prompt", accept)
    try:
        # slow after a run: the frontend renders each Preview as Text's text
        with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST",
                                  timeout=600_000) as sent:
            page.evaluate("async () => await window.app.queuePrompt(0, 1)")
    finally:
        if server is None:
            page.unroute("**/api/prompt", accept)
    prompt = sent.value.request.post_data_json["prompt"]
    if server is None:
        return prompt, None
    entry = server.wait(sent.value.json()["prompt_id"], timeout=1200)
    assert execution_error(entry) is None, describe(execution_error(entry))
    return prompt, entry


def ran(prompt: dict, entry: dict) -> set[str]:
    """The nodes that executed: all but those ComfyUI answered from its cache (the execution_cached message)."""
    cached = next(data["nodes"] for kind, data in entry["status"]["messages"] if kind == "execution_cached")
    return set(prompt) - set(cached)


def downstream(prompt: dict, roots: set[str]) -> set[str]:
    found, todo = set(roots), list(roots)
    while todo:
        node = todo.pop()
        for key, value in prompt.items():
            links = [v for v in value["inputs"].values() if isinstance(v, list) and len(v) == 2]
            if key not in found and any(str(link[0]) == node for link in links):
                found.add(key)
                todo.append(key)
    return found


def changed_inputs(before: dict, after: dict) -> dict[str, set[str]]:
    return {k: {i for i in after[k]["inputs"] if after[k]["inputs"][i] != before[k]["inputs"].get(i)}
            for k in after if after[k]["inputs"] != before[k]["inputs"]}


def set_seed_control(page, mode: str) -> None:
    page.evaluate("""(mode) => {
        for (const node of window.app.graph._nodes)
            for (const w of node.widgets || []) if (w.name === 'control_after_generate') w.value = mode;
    }""", mode)


def queue_again(page, server, first: dict) -> None:
    """After a first Queue (``first``, the prompt it sent) with nothing touched: only the sampler's seed has
    re-rolled (as KSampler's does), so the next Queue runs only it and what follows; with that seed fixed,
    the Queue after runs nothing. The LLM seeds have no 'control after generate': they never change the
    LLM's input, so perception and reasoning stay cached. ``server`` None: the prompts only, not run."""
    controls = page.evaluate("""() => window.app.graph._nodes.filter(
        n => (n.widgets || []).some(w => w.name === 'control_after_generate')).map(n => n.type)""")
    assert set(controls) <= set(SAMPLERS), controls  # no LLM seed re-rolls
    # The control acts after each Queue: the first one's re-roll is in the next prompt, and "fixed" keeps it
    # from then on (the control is no input, so setting it changes no prompt: the check below says so)
    set_seed_control(page, "fixed")
    second, entry = queue_like_a_user(page, server)
    rerolled = changed_inputs(first, second)
    samplers = {k for k, v in second.items() if v["class_type"] in SAMPLERS}
    # Nothing else changes: not even a Preview as Text node's shown text, which this frontend would send back
    # as an input without the pack's web extension, so that the node ran again after each change it showed.
    assert rerolled == {k: {"seed"} for k in samplers}, rerolled
    if server:
        assert ran(second, entry) == downstream(second, samplers)
    third, entry = queue_like_a_user(page, server)
    assert third == second
    if server:
        assert ran(third, entry) == set(), f"ran again with nothing changed: {ran(third, entry)}"


@pytest.mark.parametrize("name", [n for n in WORKFLOWS if n == "cielr_perception"])
def test_perception_workflow_runs_and_a_second_queue_runs_nothing(server, browser, name):
    """Queued like a user with the tiny perception models: the scene text as the LLM reads it, with relations,
    and the overlay; a workflow without a sampler then runs nothing on later Queues (queue_again)."""
    gdino = json.loads((server.base / "models" / "meta.json").read_text())["gdino"]
    widgets = {**TEST_WIDGETS, "CIELRGroundingDINOLoader": {"model_name": gdino}}
    page = open_comfyui(browser, server.url)  # a page of its own: the texts it shows stay with it
    try:
        api_prompt(page, name, widgets)
        prompt, entry = queue_like_a_user(page, server)
        photo = Image.open(server.base / "input" / "cielr_photo.png")
        # The scene as the LLM reads it (the whole scene JSON holds every mask: megabytes a page cannot show)
        text = outputs_by_type(prompt, entry, "PreviewAny")[0]["text"][0]
        assert text.startswith(f"Image {photo.width}x{photo.height} pixels.\n"), text[:300]
        count = re.search(r"^(\d+) objects? in all\.$", text, re.MULTILINE)
        assert count and int(count[1]) > 0 and "\n#1 " in text, text[:2000]
        assert "\nRelations" in text and "not computed" not in text, text[-2000:]  # Build Scene added them
        shown = outputs_by_type(prompt, entry, "PreviewImage")[0]["images"][0]
        overlay = Image.open(Path(server.base) / "temp" / shown["subfolder"] / shown["filename"])
        assert overlay.size == photo.size
        assert not np.array_equal(np.asarray(overlay.convert("RGB")), np.asarray(photo.convert("RGB")))
        queue_again(page, server, prompt)
    finally:
        page.close()


@pytest.mark.parametrize("name", EDIT_RUNS)
def test_edit_workflow_runs_and_a_second_queue_runs_only_the_sampler(edit_server, browser, name, sd15_models,
                                                                     llama_server, smollm2_gguf):
    """Queued like a user with the test models and the real llama.cpp server: the saved edit equals the photo
    outside the MASK output, the LLM's plan is shown and valid, Verify Edit's verdicts are shown; then only
    the sampler and what follows run again (queue_again)."""
    from cielr_core.plan import Plan

    checkpoint = sd15_models.inpainting if "inpaint_model" in name else sd15_models.checkpoint
    widgets = edit_widgets(edit_server, (llama_server.base_url, "smollm2"), smollm2_gguf, checkpoint)
    photo_name = "cielr_photo.png"
    if name in WHOLE_PHOTO:
        photo_name = small_photo(edit_server)
        widgets["LoadImage"] = {"image": photo_name}
    page = open_comfyui(browser, edit_server.url)  # a page of its own: the texts it shows stay with it
    try:
        api_prompt(page, name, widgets)
        prompt, entry = queue_like_a_user(page, edit_server)
        assert_untouched_outside_mask(edit_server, prompt, entry, photo_name)
        decompose = [k for k, v in prompt.items() if v["class_type"] == "CIELRDecompose"]
        if decompose:  # the LLM's plan is shown and valid
            plan_text = next(entry["outputs"][k]["text"][0] for k, v in prompt.items()
                             if v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] in decompose)
            assert Plan.model_validate_json(plan_text).actions
        for key in [k for k, v in prompt.items() if v["class_type"] == "CIELRVerifyEdit"]:  # one verdict an action
            shown = next(entry["outputs"][k]["text"][0] for k, v in prompt.items()
                         if v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] == key)
            verdict = json.loads(shown)
            assert verdict["status"] in ("passed", "failed") and verdict["actions"]
            assert all(a["status"] in ("passed", "failed", "not verified") for a in verdict["actions"])
        queue_again(page, edit_server, prompt)
    finally:
        page.close()


@pytest.mark.parametrize("name", [n for n in NOT_RUN_HERE if n != "cielr_perception"])
def test_a_second_queue_sends_only_a_new_sampler_seed(edit_server, browser, name, sd15_models, smollm2_gguf,
                                                      closed_port_url):
    """A workflow the tests cannot run: the prompts its Queues send, as queue_again checks them (the server
    is not asked, so no LLM either)."""
    widgets = edit_widgets(edit_server, (closed_port_url, "not-asked"), smollm2_gguf, sd15_models.checkpoint)
    page = open_comfyui(browser, edit_server.url)
    try:
        api_prompt(page, name, widgets)
        first, _ = queue_like_a_user(page)
        queue_again(page, None, first)
    finally:
        page.close()
