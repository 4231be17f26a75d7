"""The reasoning stage with real components: SmolLM2-135M on the llama.cpp server (and a random-weight
Llama through transformers) over a scene that tiny GroundingDINO and SAM models built from a real
photo. A 135M model reasons poorly: these tests assert validity, not wisdom."""

from __future__ import annotations

import json

import pytest

from cielr_core.llm import LocalLLM, RemoteLLM
from cielr_core.perception import detect_objects, perceive
from cielr_core.plan import Plan, validate_plan
from cielr_core.reasoning import decompose, propose_labels, refine_scene
from cielr_core.scene import build_scene
from tests.conftest import CIEBENCH, load_photo

pytestmark = pytest.mark.slow

MAX_ROUNDS = 2


@pytest.fixture(scope="module")
def segmenter(tiny_sam_path):
    from cielr_core.perception import load_sam

    return load_sam(tiny_sam_path)


@pytest.fixture(scope="module")
def case():
    meta = json.loads((CIEBENCH / "data.json").read_text())["0"]
    return load_photo(0), meta["instruction"]


def test_full_reasoning_run_on_a_real_photo_gives_a_valid_plan(llama_server, tiny_detector, segmenter, case):
    photo, instruction = case
    llm = RemoteLLM(llama_server.base_url, llama_server.model, temperature=0, seed=0, timeout=300)

    labels = propose_labels(llm, instruction, extra_labels="tv")
    assert labels[0] == "tv" and 1 <= len(labels) <= 7
    assert all(1 <= len(label) <= 40 and label == label.strip().lower() for label in labels)

    raw = perceive(photo, tiny_detector, segmenter, labels, box_threshold=0.0, text_threshold=0.0)
    scene = build_scene(raw)
    assert scene.objects, "thresholds 0: random weights still give boxes"
    before = {o.id: o.label for o in scene.objects}

    calls = []

    def detect(names, within):
        calls.append((names, within))
        return detect_objects(photo, tiny_detector, segmenter, names, within=within, box_threshold=0.0,
                              text_threshold=0.0)

    refined = refine_scene(scene, instruction, llm, detect, max_rounds=MAX_ROUNDS)
    assert 1 <= len(refined.rounds) <= MAX_ROUNDS
    assert len(calls) <= MAX_ROUNDS
    assert {o.id: o.label for o in refined.scene.objects if o.id in before} == before, "ids never change"
    assert refined.scene.relations is not None
    assert refined.text().startswith("Round 1:")

    plan = decompose(refined.scene, instruction, llm)
    assert isinstance(plan, Plan)
    validate_plan(plan, refined.scene)
    ids = {o.id for o in refined.scene.objects}
    for action in plan.actions:
        assert set(action.targets) <= ids
        assert action.anchor is None or action.anchor in ids

    usage = llm.usage
    assert usage.repairs == 0, "constrained decoding: no answer needed a parse repair"
    assert usage.calls <= MAX_ROUNDS + 2 + 1  # + at most one plan repair round


def test_local_random_weight_model_gives_a_valid_plan(tiny_chat_model, tiny_detector, segmenter, case):
    photo, instruction = case
    scene = build_scene(perceive(photo, tiny_detector, segmenter, "tv, speaker", box_threshold=0.0,
                                 text_threshold=0.0))
    for seed in (0, 1):
        llm = LocalLLM(tiny_chat_model, temperature=0.8, seed=seed, max_new_tokens=2048)
        plan = decompose(scene, instruction, llm)
        validate_plan(plan, scene)
        assert llm.usage.repairs == 0
