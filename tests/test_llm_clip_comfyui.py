"""CIELR LLM (from a text encoder) in the real ComfyUI server, through POST /prompt.

The CLIP that generates is the test-only TestOnlyTextGenCLIP (devkit/comfy_nodes/textgen.py: upstream's
tokenize/generate/decode contract over the real SmolLM2 GGUF), since no core newer than 0.3.75 installs
here; the plain CLIP is 0.3.75's own, from CheckpointLoaderSimple on the random (reduced) SD1.5 file.
Scenes come from core mask nodes on a real photo (tests/test_interop_comfyui.py's graphs).
"""

from __future__ import annotations

import json

import pytest

from cielr_core.plan import plan_from_json
from cielr_core.scene import scene_from_json
from devkit.comfyui import describe, execution_error
from tests import test_interop_comfyui as interop
from tests.test_interop_comfyui import PHOTO, H, W, link_checkpoint, masks_graph

pytestmark = pytest.mark.slow
server = interop.server  # the session's server with the photo in its input folder

INSTRUCTION = "Remove the lamp."


def clip_llm(smollm2_gguf, log, reads_images: bool = False) -> dict:
    return {
        "tclip": {"class_type": "TestOnlyTextGenCLIP",
                  "inputs": {"gguf": str(smollm2_gguf), "reads_images": reads_images, "log_file": str(log)}},
        "llm": {"class_type": "CIELRLLMFromCLIP",
                "inputs": {"clip": ["tclip", 0], "temperature": 0.0, "seed": 7, "max_tokens": 256}},
    }


def plan_graph(llm_nodes: dict) -> dict:
    """Core masks on the photo -> Scene From Masks -> Build Scene -> Decompose with the given LLM."""
    prompt = masks_graph()
    prompt.update(llm_nodes)
    prompt["plan"] = {"class_type": "CIELRDecompose",
                      "inputs": {"scene": ["build", 0], "llm": ["llm", 0], "instruction": INSTRUCTION}}
    prompt["plan_json"] = {"class_type": "PreviewAny", "inputs": {"source": ["plan", 1]}}
    return prompt


def valid_plan(entry: dict):
    """The plan the graph made, validated against the graph's own scene: what every LLM's plan must pass."""
    assert execution_error(entry) is None, describe(execution_error(entry))
    outputs = entry["outputs"]
    scene = scene_from_json(outputs["json"]["text"][0])
    plan = plan_from_json(outputs["plan_json"]["text"][0], scene)
    assert plan.actions
    return plan


def events(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_object_info_lists_the_node(server):
    info = server.object_info()["CIELRLLMFromCLIP"]
    assert info["category"] == "CIELR/reasoning" and list(info["output"]) == ["CIELR_LLM"]
    assert list(info["input"]["required"]) == ["clip", "temperature", "seed", "max_tokens"]
    for name, spec in info["input"]["required"].items():
        assert spec[1].get("tooltip"), f"{name} has no tooltip"
    # the LLM seed stays put between Queues (the frontend would add the control to any INT named seed)
    assert info["input"]["required"]["seed"][1]["control_after_generate"] is False


def test_a_plan_from_the_text_encoder_passes_the_same_validation_as_the_remote_llms(server, smollm2_gguf,
                                                                                     llama_server, tmp_path):
    log = tmp_path / "clip.log"
    from_clip = valid_plan(server.run(plan_graph(clip_llm(smollm2_gguf, log)), timeout=900))
    remote = {"llm": {"class_type": "CIELRLLMRemote",
                      "inputs": {"base_url": llama_server.base_url, "model": llama_server.model, "api_key_env": "",
                                 "temperature": 0.0, "seed": 7, "timeout": 300.0, "vision": False}}}
    from_server = valid_plan(server.run(plan_graph(remote), timeout=900))
    assert from_clip.actions and from_server.actions
    # the CLIP was driven by upstream's contract: its template, no thinking, greedy, the node's seed; the rules
    # went in as the template's system prompt, which this (newest-core) tokenizer takes
    calls = events(log)
    asks = [e for e in calls if e["event"] == "tokenize" and e["text"] != "Name the objects."]
    gens = [e for e in calls if e["event"] == "generate"]
    assert asks and len(gens) == len(asks)
    assert all(e["skip_template"] is False and e["thinking"] is False and e["min_length"] == 1 for e in asks)
    assert all(e["image"] is None and INSTRUCTION in e["text"] for e in asks)
    assert all(e["system_prompt"] and e["system_prompt"] not in e["text"] for e in asks)
    assert all(e["do_sample"] is False and e["seed"] == 7 and e["max_length"] == 256 for e in gens)


def test_the_photo_goes_to_an_encoder_that_reads_images(server, smollm2_gguf, tmp_path):
    def labels_graph(reads_images: bool, log) -> dict:
        return {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
                **clip_llm(smollm2_gguf, log, reads_images),
                "labels": {"class_type": "CIELRProposeLabels",
                           "inputs": {"llm": ["llm", 0], "instruction": INSTRUCTION, "extra_labels": "lamp",
                                      "image": ["photo", 0]}},
                "show": {"class_type": "PreviewAny", "inputs": {"source": ["labels", 0]}}}

    for reads_images in (True, False):
        log = tmp_path / f"clip-{reads_images}.log"
        entry = server.run(labels_graph(reads_images, log), timeout=600)
        assert execution_error(entry) is None, describe(execution_error(entry))
        assert entry["outputs"]["show"]["text"][0].split(", ")[0] == "lamp"
        asks = [e for e in events(log) if e["event"] == "tokenize" and INSTRUCTION in e["text"]]
        assert asks
        # the photo (796x597) goes shrunk to at most 1024 a side, as an IMAGE batch of one
        assert all(e["image"] == ([1, H, W, 3] if reads_images else None) for e in asks), asks[0]["image"]


def test_a_plain_0_3_75_clip_gives_one_clear_error(server, sd15_models):
    link_checkpoint(server, sd15_models)
    nodes = {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sd15_models.checkpoint.name}},
             "llm": {"class_type": "CIELRLLMFromCLIP",
                     "inputs": {"clip": ["ckpt", 1], "temperature": 0.0, "seed": 0, "max_tokens": 256}}}
    error = execution_error(server.run(plan_graph(nodes), timeout=600))
    assert error is not None and error["node_type"] == "CIELRLLMFromCLIP"
    message = error["exception_message"]
    assert "cannot generate text with a text encoder" in message and "Generate Text" in message
    assert "CIELR LLM (local)" in message and "CIELR LLM (OpenAI-compatible server)" in message
    assert "0.3.75" in message and "Update ComfyUI" in message
