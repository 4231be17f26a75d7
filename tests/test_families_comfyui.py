"""CIELR Inpaint Actions with every checkpoint family users swap in, in a real ComfyUI server.

The diffusion models and VAEs are random-weight models of the real architectures, built from
ComfyUI's own classes at reduced depth (devkit/family_models.py) and loaded through
ComfyUI's own loaders (CheckpointLoaderSimple, UNETLoader, VAELoader), which detect the family from
the weights. The text encoders are stand-ins of the real conditioning shapes (a test-only node;
the real ones are 5-17 GB). A second test-only node records what the diffusion model received on
every call (c_concat, reference latents, guidance) and every VAE encode, so the conditioning path
is asserted on the tensors themselves. This module runs its own server (the test nodes must be
installed at start-up) and stops it at the end, which frees every family model at once.
"""

from __future__ import annotations

import json
import shutil

import pytest
import requests

from devkit.comfyui import TEST_NODES, describe, execution_error, start_comfyui, stop_comfyui
from devkit.family_models import CASES, MODELS, SHARES_WEIGHTS, Case, build_family_models, link_models
from tests.conftest import CIEBENCH, REPO
from tests.fixtures.comfyui import linked_models_dir
from tests.test_editing_comfyui import _check_exact, _gdino, edit_prompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def family_server(tmp_path_factory, perception_models_dir, model_cache):
    paths = build_family_models(model_cache)
    base = tmp_path_factory.mktemp("families-base")
    models = linked_models_dir(perception_models_dir, base / "models")  # the tiny perception models
    link_models(paths, models)
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "cielr_test_nodes").symlink_to(TEST_NODES)
    (base / "input").mkdir()
    shutil.copy(CIEBENCH / "0" / "0.png", base / "input" / "cielr_edit_photo.png")
    server = start_comfyui(base)
    yield server
    stop_comfyui(server)


def family_prompt(server, case: Case, log_file: str) -> dict:
    prompt = edit_prompt(_gdino(server), "unused")
    del prompt["10"]
    prompt.update(case.loaders)
    vae = ["12", 0] if "12" in case.loaders else ["10", 2]
    prompt["8"] = {"class_type": "CIELRTestRecordSampling",
                   "inputs": {"model": ["10", 0], "vae": vae, "log_file": log_file}}
    prompt["9"] = {"class_type": "CIELRTestTextEncoder", "inputs": {"family": case.clip}}
    prompt["11"]["inputs"].update({"model": ["8", 0], "clip": ["9", 0], "vae": ["8", 1], "steps": 2, "cfg": case.cfg,
                                   "working_size": 64, "edit_mode": case.edit_mode,
                                   "guidance": case.guidance_input, **case.inputs})
    return prompt


def _run(server, prompt: dict, timeout: float = 900) -> dict:
    """``server.run``, patient with a server that is too busy loading a model to answer a poll."""
    import time

    prompt_id = server.queue(prompt)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return server.wait(prompt_id, max(1.0, deadline - time.monotonic()))
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise


def _events(path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == kind]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_two_actions_with_each_family(family_server, case, tmp_path):
    if case.id not in SHARES_WEIGHTS:  # one family in memory at a time (CI: 24 GB next to the rest)
        requests.post(f"{family_server.url}/free", json={"unload_models": True, "free_memory": True}, timeout=120)
    log = tmp_path / "calls.jsonl"
    entry = _run(family_server, family_prompt(family_server, case, str(log)))
    assert execution_error(entry) is None, describe(execution_error(entry))
    report = entry["outputs"]["23"]["text"][0]
    _check_exact(family_server, entry)  # the input's size; every changed pixel inside the MASK output

    assert f"model {case.config} (" in report and f"family {case.label}" in report, report
    samples = _events(log, "sample")
    assert samples, "the diffusion model was never called"
    for call in samples:
        assert (call["c_concat"] is not None) == case.concat, call
        assert (call["ref_latents"] is not None) == case.reference, call
        if case.guidance is None:
            assert call["guidance"] is None or case.config not in ("Flux", "FluxInpaint", "Flux2"), call
        else:
            assert call["guidance"] == [case.guidance] * len(call["guidance"]), call
    if case.reference:
        assert "instruction edit: the crop as reference latent" in report
        assert "replace the " in report and "with a floor lamp" in report  # actions phrased as commands
        for call in samples:  # the reference is the crop itself, at the working size
            assert [ref[-2:] for ref in call["ref_latents"]] == [call["input"][-2:]], call
    if case.concat:
        assert "inpainting checkpoint: inpaint conditioning" in report
    # VAE encodes per action: the crop, plus the masked crop for inpaint concat conditioning only
    encodes = _events(log, "encode")
    assert len(encodes) == 2 * (2 if case.concat else 1), encodes
    if case.clip == "qwen_image" and case.reference:  # Qwen2.5-VL reads the crop too, as TextEncodeQwenImageEdit
        assert all(e["images"] for e in _events(log, "text")), _events(log, "text")


def test_flux_model_with_an_sd_vae_is_named(family_server):
    case = CASES[-1]  # Flux.1 dev, still loaded from the last case
    prompt = family_prompt(family_server, case, "")
    prompt["12"]["inputs"]["vae_name"] = MODELS["sd-vae"].file
    error = execution_error(_run(family_server, prompt))
    assert error is not None and error["node_type"] == "CIELRInpaintActions", error
    message = error["exception_message"]
    assert "VAE does not belong to this MODEL" in message and "(Flux)" in message and "4 channels" in message


def test_a_video_model_is_refused_by_family(family_server):
    prompt = family_prompt(family_server, CASES[2], "")  # Qwen-Image's VAE makes Wan 2.1 latents
    prompt["10"]["inputs"]["unet_name"] = MODELS["wan21-t2v"].file
    error = execution_error(_run(family_server, prompt))
    assert error is not None and error["node_type"] == "CIELRInpaintActions", error
    message = error["exception_message"]
    assert "edits still images" in message and "WAN21_T2V" in message and "video model" in message, message


def test_the_flux_fill_workflow_is_set_up_for_flux_fill():
    """The shipped workflow loads Flux Fill the way the family test above runs it (UNETLoader +
    VAELoader, Flux guidance 30, cfg 1, automatic working size), and names its files with links."""
    workflow = json.loads((REPO / "example_workflows" / "cielr_edit_flux_fill.json").read_text())
    nodes = {n["type"]: n for n in workflow["nodes"]}
    assert nodes["UNETLoader"]["widgets_values"][0] == "flux1-fill-dev.safetensors"
    assert nodes["DualCLIPLoader"]["widgets_values"][2] == "flux"
    assert nodes["VAELoader"]["widgets_values"][0] == "ae.safetensors"
    widgets = nodes["CIELRInpaintActions"]["widgets_values"]
    assert widgets[3] == 1 and widgets[9] == 0 and widgets[-2:] == [30, "auto"]  # cfg, working size, guidance
    links = {(link[1], link[3]) for link in workflow["links"]}
    inpaint = nodes["CIELRInpaintActions"]["id"]
    for loader in ("UNETLoader", "DualCLIPLoader", "VAELoader"):
        assert (nodes[loader]["id"], inpaint) in links, f"{loader} is not connected to Inpaint Actions"
    files = {m["name"]: m for n in workflow["nodes"] for m in n.get("properties", {}).get("models", [])}
    for name in ("flux1-fill-dev.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "clip_l.safetensors",
                 "ae.safetensors"):
        assert files[name]["url"].startswith("https://huggingface.co/"), name
