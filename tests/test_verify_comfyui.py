"""Verification and best of N inside a real ComfyUI server: the tiny GroundingDINO and SAM, the
random (reduced) SD1.5 checkpoint. Graphs and the exactness check come from the editing tests."""

from __future__ import annotations

import json

import pytest

from devkit.comfyui import describe, execution_error
from tests.fixtures.watch import SamplingStep, interrupt, run_watched
from tests.test_editing_comfyui import _check_exact, _gdino, _saved, edit_prompt, editing_server  # noqa: F401

pytestmark = pytest.mark.slow
CANDIDATES = 3


def best_of_n_prompt(server, checkpoint: str, steps: int = 1) -> dict:
    prompt = edit_prompt(_gdino(server), checkpoint)
    prompt["11"]["inputs"].update({"detector": ["2", 0], "candidates": CANDIDATES, "retries": 0, "steps": steps})
    # the verdicts of the same edit, checked again by the Verify Edit node
    prompt["50"] = {"class_type": "CIELRVerifyEdit",
                    "inputs": {"image_before": ["1", 0], "image_after": ["11", 0], "scene": ["5", 0],
                               "plan": ["6", 0], "detector": ["2", 0], "segmenter": ["3", 0], "grow": 6,
                               "box_threshold": 0.3, "text_threshold": 0.25}}
    prompt["51"] = {"class_type": "PreviewAny", "inputs": {"source": ["50", 0]}}
    prompt["52"] = {"class_type": "PreviewAny", "inputs": {"source": ["50", 1]}}
    prompt["53"] = {"class_type": "SaveImage", "inputs": {"images": ["50", 2], "filename_prefix": "cielr_verify"}}
    return prompt


def test_node_interfaces(editing_server):  # noqa: F811
    info = editing_server.object_info()
    node = info["CIELRVerifyEdit"]
    assert node["output"] == ["STRING", "BOOLEAN", "IMAGE"]
    assert list(node["input"]["required"]) == ["image_before", "image_after", "scene", "plan", "detector", "grow",
                                               "box_threshold", "text_threshold"]
    assert set(node["input"]["optional"]) == {"segmenter", "llm"}
    inpaint = info["CIELRInpaintActions"]["input"]
    # the new inputs are optional and come after every released one, so saved workflows keep loading
    names = list(inpaint["optional"])
    ours = ["detector", "segmenter", "llm", "candidates", "retries"]
    assert [n for n in names if n in ours] == ours and not set(ours) & set(inpaint["required"])
    assert inpaint["optional"]["candidates"][1]["default"] == 1 and inpaint["optional"]["retries"][1]["default"] == 0
    for spec in list(node["input"]["required"].values()) + list(inpaint["optional"].values()):
        assert spec[1].get("tooltip")


def test_three_candidates_per_action_exact_outside_the_mask(editing_server, sd15_models):  # noqa: F811
    prompt = best_of_n_prompt(editing_server, sd15_models.checkpoint.name)
    entry = editing_server.run(prompt, timeout=900)
    assert execution_error(entry) is None, describe(execution_error(entry))
    _check_exact(editing_server, entry)
    report = entry["outputs"]["23"]["text"][0]
    table = report.split("verdicts:\n", 1)[1]
    for n, op in ((1, "replace"), (2, "remove")):
        row = next(line for line in table.splitlines() if line.startswith(f"{n} | {op} | "))
        cells = [c.strip() for c in row.split("|")]
        assert cells[2] == str(CANDIDATES)  # three samplings of this action
        assert cells[3] in {"1", "2", "3"} and cells[5].split()[0] in {"passed", "failed"}
        assert int(cells[4]) == 5 + (n - 1) + int(cells[3]) - 1  # the kept seed: action seed + k
    assert sum(line.lstrip().startswith("kept candidate") for line in table.splitlines()) == 2
    assert table.count(" candidate ") >= 2 * CANDIDATES
    assert "of 3 kept" in report  # the action lines name the kept candidate

    verdict = json.loads(entry["outputs"]["51"]["text"][0])
    assert [a["op"] for a in verdict["actions"]] == ["replace", "remove"]
    assert verdict["status"] in {"passed", "failed"} and all(a["evidence"] for a in verdict["actions"])
    assert entry["outputs"]["52"]["text"][0] == str(verdict["passed"])
    preview = _saved(editing_server, entry, "53")
    assert preview.shape[:2] == _saved(editing_server, entry, "20").shape[:2]


def test_cancel_during_the_second_candidate(editing_server, sd15_models):  # noqa: F811
    """Interrupt once the progress bar is inside the second candidate of the first action: the job
    ends as interrupted, before the third candidate."""
    steps = 6
    prompt = best_of_n_prompt(editing_server, sd15_models.checkpoint.name, steps=steps)
    second_candidate = SamplingStep("11", at=steps + 1)  # the first step of candidate 2
    event, _ = run_watched(editing_server, prompt, second_candidate, interrupt(editing_server))
    assert event["type"] == "execution_interrupted", event
    assert event["data"]["node_type"] == "CIELRInpaintActions"
    # stopped inside candidate 2, never reached candidate 3's end
    assert steps < second_candidate.highest < 2 * steps + 2
