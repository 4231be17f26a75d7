"""The fault matrix: the shipped workflows on the real ComfyUI server when things go wrong.

Each case ends in a clear error or a clean interruption, and the server stays healthy: the next job
runs for real (not from ComfyUI's cache). Workflows come from the shipped files, converted to the
API format by the frontend in headless Chromium (tests/test_workflows.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from itertools import count

import numpy as np
import pytest
import requests

from devkit.comfyui import ComfyServer, describe, execution_error, link_model, start_comfyui, stop_comfyui
from devkit.llm_servers import start_llama_server, stop_llama_server
from devkit.sam_models import build_tiny_sam
from tests.fixtures.llm_servers import LLAMA_THREADS, Reply, first_enum, schema_name
from tests.fixtures.watch import executing, interrupt, run_watched
from tests.fixtures.workflows import FAST_INPAINT, TEST_WIDGETS, TWO_ACTIONS, api_prompt, outputs_by_type, saved_image

pytestmark = pytest.mark.slow

_fresh = count(1)


def node_id(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


def gdino_name(server: ComfyServer) -> str:
    return json.loads((server.base / "models" / "meta.json").read_text())["gdino"]


@pytest.fixture(scope="module")
def converted(page, edit_server, sd15_models) -> dict[str, dict]:
    """Each shipped workflow converted once by the frontend with the test models; the tests then
    change inputs in the API prompt (a page kept busy with many loads is what a browser test is
    for, not what a fault test is about)."""
    widgets = {**TEST_WIDGETS, "CIELRGroundingDINOLoader": {"model_name": gdino_name(edit_server)},
               "CheckpointLoaderSimple": {"ckpt_name": sd15_models.checkpoint.name},
               "CIELRInpaintActions": FAST_INPAINT}  # a fault is about the job, not the samples
    return {name: api_prompt(page, name, widgets) for name in ("cielr_perception", "cielr_edit", "cielr_manual_plan")}


def with_inputs(prompt: dict, changes: dict[str, dict]) -> dict:
    """A copy of ``prompt`` with inputs changed by node type."""
    out = copy.deepcopy(prompt)
    for class_type, inputs in changes.items():
        out[node_id(out, class_type)]["inputs"].update(inputs)
    return out


def perception_prompt(converted: dict, sam: str = "tiny_sam.pth") -> dict:
    return with_inputs(converted["cielr_perception"], {"CIELRSAMLoader": {"model_name": sam}})


def edit_prompt(converted: dict, llm_url: str, instruction: str, *, timeout: float = 60.0,
                max_rounds: int = 1) -> dict:
    return with_inputs(converted["cielr_edit"], {
        "PrimitiveStringMultiline": {"value": instruction},
        "CIELRLLMRemote": {"base_url": llm_url, "model": "scripted", "timeout": timeout, "seed": 3},
        "CIELRRefineScene": {"max_rounds": max_rounds, "box_threshold": 0.0, "text_threshold": 0.0},
    })


def assert_healthy(server: ComfyServer, converted: dict) -> None:
    """The server is alive and runs the next job for real: Perceive must execute, not come from the cache."""
    prompt = perception_prompt(converted)
    perceive = node_id(prompt, "CIELRPerceive")
    prompt[perceive]["inputs"]["box_threshold"] = next(_fresh) * 1e-4  # a new input: no cached result
    entry = server.run(prompt, timeout=300)
    assert execution_error(entry) is None, describe(execution_error(entry))
    cached = [ids for kind, data in entry["status"]["messages"] if kind == "execution_cached"
              for ids in data["nodes"]]
    assert perceive not in cached


def scene_text(prompt: dict, entry: dict) -> str:
    assert execution_error(entry) is None, describe(execution_error(entry))
    return outputs_by_type(prompt, entry, "PreviewAny")[0]["text"][0]


# ----------------------------------------------------------------------------------- LLM faults

def by_instruction(delay_verdicts: float = 0.0) -> Callable[[dict], Reply]:
    """A deterministic LLM whose plan depends on the instruction it is given."""
    def reply(body: dict) -> Reply:
        name = schema_name(body)
        asked = json.dumps(body["messages"])
        if name == "LabelList":
            return Reply(content=json.dumps({"labels": ["lamp", "tv"]}))
        if name == "SceneVerdict":
            return Reply(content=json.dumps({"note": "a shelf may hide it", "sufficient": False,
                                             "missing_labels": ["shelf"], "search_within": None}),
                         delay=delay_verdicts)
        if name == "PlanAnswer":
            target = first_enum(body["response_format"]["json_schema"]["schema"])
            action = ({"op": "remove", "targets": [target], "prompt": ""} if "Remove" in asked else
                      {"op": "replace", "targets": [target], "prompt": "a red floor lamp"})
            return Reply(content=json.dumps({"actions": [action]}))
        return Reply(status=400, body=json.dumps({"error": {"message": f"unexpected schema {name!r}"}}))
    return reply


def test_llm_server_killed_mid_run(edit_server, converted, smollm2_gguf, tmp_path):
    """The real llama.cpp server dies while Propose Labels waits for it: a clear error, soon."""
    llm = start_llama_server(smollm2_gguf, tmp_path, LLAMA_THREADS)
    try:
        prompt = edit_prompt(converted, llm.base_url,
                             "What makes the TV louder? Replace it with a floor lamp.", timeout=120)
        propose = node_id(prompt, "CIELRProposeLabels")

        def kill() -> None:
            time.sleep(0.3)  # the request is on its way
            os.kill(llm.process.pid, signal.SIGKILL)

        event, seconds = run_watched(edit_server, prompt, executing(propose), kill)
    finally:
        stop_llama_server(llm)
    assert event["type"] == "execution_error", event
    assert event["data"]["node_type"] in ("CIELRProposeLabels", "CIELRRefineScene", "CIELRDecompose")
    message = event["data"]["exception_message"]
    assert llm.base_url in message and "Check that the server is running" in message, message
    assert seconds < 60
    assert_healthy(edit_server, converted)


def test_llm_slower_than_the_timeout(edit_server, converted, scripted_server):
    scripted_server.answer({"labels": ["lamp"]}, delay=30)
    prompt = edit_prompt(converted, scripted_server.base_url,
                         "Replace the lamp with a plant.", timeout=2)
    started = time.monotonic()
    entry = edit_server.run(prompt, timeout=300)
    seconds = time.monotonic() - started
    error = execution_error(entry)
    assert error is not None and error["node_type"] == "CIELRProposeLabels", describe(error)
    assert "did not answer within 2 s" in error["exception_message"]
    assert len(scripted_server.requests) == 1  # a timeout is not retried
    assert seconds < 25  # 2 s, not the 30 s the answer would take
    assert_healthy(edit_server, converted)


# ----------------------------------------------------------------------------------- cancel

def test_cancel_during_perception(edit_server, converted, full_sam_vit_b_path):
    """A full-size SAM makes Perceive last long enough to be cancelled inside it."""
    link_model(edit_server.base / "models", "sams", full_sam_vit_b_path)
    prompt = perception_prompt(converted, sam=full_sam_vit_b_path.name)
    event, seconds = run_watched(edit_server, prompt, executing(node_id(prompt, "CIELRPerceive")),
                                 interrupt(edit_server))
    assert event["type"] == "execution_interrupted", event
    assert event["data"]["node_type"] == "CIELRPerceive"
    assert seconds < 120  # SAM's image embedding is the longest step without a check
    assert_healthy(edit_server, converted)


def test_cancel_during_refinement(edit_server, converted, scripted_server):
    """Cancel lands between LLM calls: the verdict in flight comes back, nothing more is asked."""
    scripted_server.responder = by_instruction(delay_verdicts=3.0)
    prompt = edit_prompt(converted, scripted_server.base_url,
                         "Replace whatever makes the TV louder with a floor lamp.", max_rounds=3)

    def interrupt_when_verdict_asked() -> None:
        # the executing event comes before the first request: wait until the verdict is in flight
        deadline = time.monotonic() + 60
        while not any(schema_name(r.body) == "SceneVerdict" for r in list(scripted_server.requests)):
            assert time.monotonic() < deadline, "Refine Scene never asked for a verdict"
            time.sleep(0.05)
        interrupt(edit_server)()

    event, _ = run_watched(edit_server, prompt, executing(node_id(prompt, "CIELRRefineScene")),
                           interrupt_when_verdict_asked)
    assert event["type"] == "execution_interrupted", event
    assert event["data"]["node_type"] == "CIELRRefineScene"
    asked = [schema_name(r.body) for r in scripted_server.requests]
    assert asked == ["LabelList", "SceneVerdict"], asked  # no second round, no plan
    assert_healthy(edit_server, converted)


def test_cancel_during_sampling(edit_server, converted):
    prompt = with_inputs(converted["cielr_manual_plan"], {"CIELRPlanFromJSON": {"plan_json": TWO_ACTIONS},
                                                          "CIELRInpaintActions": {"steps": 1000}})
    inpaint = node_id(prompt, "CIELRInpaintActions")
    sampling = lambda e: e["type"] == "progress" and e["data"].get("node") == inpaint
    event, seconds = run_watched(edit_server, prompt, sampling, interrupt(edit_server))
    assert event["type"] == "execution_interrupted", event
    assert event["data"]["node_type"] == "CIELRInpaintActions"
    assert seconds < 60  # within a few of the 1000 steps
    assert_healthy(edit_server, converted)


# ----------------------------------------------------------------------------------- state

def edit_result(server: ComfyServer, prompt: dict, entry: dict) -> tuple[np.ndarray, str]:
    assert execution_error(entry) is None, describe(execution_error(entry))
    plan = next(entry["outputs"][k]["text"][0] for k, v in prompt.items()
                if v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] == node_id(prompt, "CIELRDecompose"))
    return saved_image(server, outputs_by_type(prompt, entry, "SaveImage")[0]), plan


def test_two_jobs_back_to_back_do_not_share_state(edit_server, converted, scripted_server):
    """Two instructions on the same image: the first alone, then the second and the first again queued back
    to back (both waiting before either runs). The first gives, after the second, what it gave alone."""
    scripted_server.responder = by_instruction()
    first = edit_prompt(converted, scripted_server.base_url,
                        "Replace the thing that makes the TV louder with a red floor lamp.")
    second = edit_prompt(converted, scripted_server.base_url,
                         "Remove the thing that makes the TV louder.")
    alone = edit_result(edit_server, first, edit_server.run(first, timeout=900))
    ids = [edit_server.queue(second), edit_server.queue(first)]
    (image_second, plan_second), (image, plan) = [edit_result(edit_server, p, edit_server.wait(i, timeout=900))
                                                  for p, i in zip((second, first), ids, strict=True)]
    assert "replace" in alone[1] and "remove" in plan_second
    assert not np.array_equal(alone[0], image_second), "the two jobs must differ for the test to see a leak"
    assert plan == alone[1]
    assert np.array_equal(image, alone[0])


def test_replaced_model_file_is_noticed(edit_server, converted, tmp_path):
    sams = edit_server.base / "models" / "sams"
    build_tiny_sam(sams / "swap_sam.pth", seed=1)
    build_tiny_sam(sams / "swap_sam_seed2.pth", seed=2)
    prompt = perception_prompt(converted, sam="swap_sam.pth")
    before = scene_text(prompt, edit_server.run(prompt))
    build_tiny_sam(tmp_path / "new.pth", seed=2)
    os.replace(tmp_path / "new.pth", sams / "swap_sam.pth")  # same name, other weights
    after = scene_text(prompt, edit_server.run(prompt))
    reference = perception_prompt(converted, sam="swap_sam_seed2.pth")
    assert after == scene_text(reference, edit_server.run(reference))
    assert after != before, "the two SAMs give the same scene: the test could not see a stale cache"


def test_comfyui_restarted_between_runs(edit_server, converted, tmp_path):
    """A server started afresh over the same folders gives the scene the long-running one gives."""
    base = tmp_path / "restarted"
    (base / "input").mkdir(parents=True)
    shutil.copy(edit_server.base / "input" / "cielr_photo.png", base / "input")
    (base / "models").symlink_to(edit_server.base / "models", target_is_directory=True)
    prompt = perception_prompt(converted)
    before = scene_text(prompt, edit_server.run(prompt))
    restarted = start_comfyui(base)
    try:
        requests.get(f"{restarted.url}/object_info", timeout=60).raise_for_status()
        assert scene_text(prompt, restarted.run(prompt, timeout=300)) == before
    finally:
        stop_comfyui(restarted)
