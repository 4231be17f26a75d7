"""The LLM and reasoning nodes inside a real ComfyUI server, driven through its HTTP API.

The server here is this module's own: it starts with an API key in its environment (under a
variable whose NAME the workflow carries) so the tests can prove the key reaches the LLM server
and nowhere else, and it has a tiny random-weight chat model in models/LLM for the local node.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest
import requests

from cielr_core.plan import Plan, plan_from_json
from cielr_core.scene import scene_from_json
from devkit.comfyui import describe, execution_error, start_comfyui, stop_comfyui
from tests.conftest import CIEBENCH
from tests.fixtures.comfyui import linked_models_dir

pytestmark = pytest.mark.slow

KEY_ENV = "CIELR_TEST_LLM_KEY"
SECRET = "sk-cielr-" + uuid.uuid4().hex  # a fresh value per run: no file can hold it by accident
INSTRUCTION = json.loads((CIEBENCH / "data.json").read_text())["0"]["instruction"]
PHOTO = "cielr_reasoning_photo.png"

NODES = {
    "CIELRLLMRemote": ["CIELR_LLM"],
    "CIELRLLMLocal": ["CIELR_LLM"],
    "CIELRProposeLabels": ["STRING"],
    "CIELRRefineScene": ["CIELR_SCENE", "STRING"],
    "CIELRDecompose": ["CIELR_PLAN", "STRING"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, perception_models_dir, tiny_chat_model):
    base = tmp_path_factory.mktemp("comfy-reasoning")
    models = linked_models_dir(perception_models_dir, base / "models")
    (models / "LLM").mkdir(exist_ok=True)
    (models / "LLM" / "tiny-llama").symlink_to(tiny_chat_model, target_is_directory=True)
    (base / "input").mkdir()
    shutil.copy(CIEBENCH / "0" / "0.png", base / "input" / PHOTO)
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = SECRET  # only for the server's start: it copies os.environ
    try:
        comfy = start_comfyui(base)
    finally:
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous
    yield comfy
    stop_comfyui(comfy)


def gdino_name(server) -> str:
    return json.loads((server.base / "models" / "meta.json").read_text())["gdino"]


def remote(base_url: str, model: str, key_env: str = "") -> dict:
    return {"class_type": "CIELRLLMRemote",
            "inputs": {"base_url": base_url, "model": model, "api_key_env": key_env, "temperature": 0.0,
                       "seed": 0, "timeout": 300.0, "vision": False}}


def reasoning_prompt(server, llm_node: dict, max_rounds: int = 2) -> dict:
    """LoadImage -> Propose Labels -> Perceive -> Build Scene -> Refine Scene -> Decompose, with the
    refined scene's JSON (through Build Scene, which keeps ids) and the plan JSON shown."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "2": {"class_type": "CIELRGroundingDINOLoader",
              "inputs": {"model_name": gdino_name(server), "text_encoder": "bert-base-uncased",
                         "device": "auto"}},
        "3": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": "tiny_sam.pth", "device": "auto"}},
        "4": llm_node,
        "5": {"class_type": "CIELRProposeLabels",
              "inputs": {"llm": ["4", 0], "instruction": INSTRUCTION, "extra_labels": "tv",
                         "image": ["1", 0]}},
        "6": {"class_type": "CIELRPerceive",
              "inputs": {"image": ["1", 0], "detector": ["2", 0], "segmenter": ["3", 0], "labels": ["5", 0],
                         "box_threshold": 0.0, "text_threshold": 0.0}},
        "7": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["6", 0]}},
        "8": {"class_type": "CIELRRefineScene",
              "inputs": {"image": ["1", 0], "scene": ["7", 0], "llm": ["4", 0], "instruction": INSTRUCTION,
                         "detector": ["2", 0], "segmenter": ["3", 0], "max_rounds": max_rounds,
                         "box_threshold": 0.0, "text_threshold": 0.0}},
        "9": {"class_type": "CIELRDecompose", "inputs": {"scene": ["8", 0], "llm": ["4", 0],
                                                         "instruction": INSTRUCTION}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["9", 1]}},
        "11": {"class_type": "PreviewAny", "inputs": {"source": ["8", 1]}},
        "12": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["8", 0]}},
        "13": {"class_type": "PreviewAny", "inputs": {"source": ["12", 1]}},
        "14": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
    }


def check_plan(entry: dict) -> Plan:
    assert execution_error(entry) is None, describe(execution_error(entry))
    outputs = entry["outputs"]
    scene = scene_from_json(outputs["13"]["text"][0])
    plan = plan_from_json(outputs["10"]["text"][0], scene)  # validates: every target exists in the scene
    assert plan.actions
    assert outputs["11"]["text"][0].startswith("Round 1:")
    return plan


def test_object_info_lists_the_reasoning_nodes(server):
    info = server.object_info()
    for node, outputs in NODES.items():
        assert node in info, f"{node} missing from /object_info"
        assert info[node]["category"].startswith("CIELR/")
        assert list(info[node]["output"]) == outputs
        for section in ("required", "optional"):
            for name, spec in info[node]["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node}.{name} has no tooltip"
    assert "tiny-llama" in info["CIELRLLMLocal"]["input"]["required"]["model"][1]["options"]
    remote_inputs = info["CIELRLLMRemote"]["input"]["required"]
    assert list(remote_inputs)[:6] == ["base_url", "model", "api_key_env", "temperature", "seed", "timeout"]
    assert "NAME" in remote_inputs["api_key_env"][1]["tooltip"]
    # detector and segmenter became optional (scenes from other packs' masks); widget order is unchanged
    assert list(info["CIELRRefineScene"]["input"]["required"]) == [
        "image", "scene", "llm", "instruction", "max_rounds", "box_threshold", "text_threshold"]
    assert list(info["CIELRRefineScene"]["input"]["optional"]) == ["detector", "segmenter"]


def test_reasoning_graph_with_the_llama_server_gives_a_valid_plan(server, llama_server):
    llm = remote(llama_server.base_url, llama_server.model)
    entry = server.run(reasoning_prompt(server, llm), timeout=1200)
    check_plan(entry)
    labels = entry["outputs"]["14"]["text"][0]
    assert labels.split(", ")[0] == "tv"


def test_local_llm_node_gives_a_valid_plan(server):
    local = {"class_type": "CIELRLLMLocal",
             "inputs": {"model": "tiny-llama", "device": "auto", "temperature": 0.8, "seed": 3,
                        "max_tokens": 2048}}
    entry = server.run(reasoning_prompt(server, local, max_rounds=1), timeout=900)
    check_plan(entry)


def _files_holding(root, needle: bytes) -> list[str]:
    found = []
    for folder, _, files in os.walk(root):
        if os.path.relpath(folder, root).split(os.sep)[0] == "models":
            continue  # model weights; written before the key existed
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    if needle in f.read():
                        found.append(path)
            except OSError:
                pass
    return found


def test_the_api_key_reaches_the_llm_server_and_nowhere_else(server, scripted_server):
    scripted_server.answer({"labels": ["speaker"]})
    scripted_server.answer({"note": "ok", "sufficient": True, "missing_labels": [], "search_within": None})
    scripted_server.answer({"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}]})
    prompt = reasoning_prompt(server, remote(scripted_server.base_url, "scripted", KEY_ENV))
    prompt["20"] = {"class_type": "SaveImage",
                    "inputs": {"images": ["1", 0], "filename_prefix": "cielr_secret"}}
    widgets = [scripted_server.base_url, "scripted", KEY_ENV, 0, 0, 300, False]
    workflow = {"nodes": [{"id": 4, "type": "CIELRLLMRemote", "widgets_values": widgets}]}
    r = requests.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": uuid.uuid4().hex,
                                                    "extra_data": {"extra_pnginfo": {"workflow": workflow}}},
                      timeout=60)
    assert r.status_code == 200, r.text
    entry = server.wait(r.json()["prompt_id"], timeout=600)
    plan = check_plan(entry)
    assert plan.actions[0].targets == [1]

    # The key went out with every request to the LLM server ...
    assert len(scripted_server.requests) == 3
    assert all(req.headers.get("Authorization") == f"Bearer {SECRET}" for req in scripted_server.requests)
    # ... and an error that echoes it does not bring it back.
    scripted_server.error(401, f"invalid api key {SECRET}")
    prompt["5"]["inputs"]["extra_labels"] = "tv, lamp"  # a new input, so the node runs again
    failed = server.run(prompt, timeout=300)
    error = execution_error(failed)
    assert error is not None and "HTTP 401" in error["exception_message"]
    assert KEY_ENV in error["exception_message"]

    # Nowhere on the ComfyUI side: history, saved image metadata, temp files, user data, log.
    history = requests.get(f"{server.url}/history", timeout=30).text
    assert KEY_ENV in history and SECRET not in history
    assert SECRET not in requests.get(f"{server.url}/queue", timeout=30).text
    saved = entry["outputs"]["20"]["images"][0]
    png = (server.base / "output" / saved["subfolder"] / saved["filename"]).read_bytes()
    assert KEY_ENV.encode() in png, "the PNG carries the prompt and workflow ..."
    assert SECRET.encode() not in png, "... without the key"
    assert _files_holding(server.base, SECRET.encode()) == []
    assert SECRET not in server.log.read_text(errors="replace")
