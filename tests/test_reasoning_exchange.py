"""The reasoning steps as text for any LLM: the request is what the backend sends, the answer is read
as the backend reads it, and a bad answer is refused with the words of the backend's repair round.

Every comparison is against the real remote backend talking to the scripted OpenAI-compatible server
(tests/fixtures/llm_servers.py): the same answers go to both paths.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cielr_core.errors import InputError
from cielr_core.llm import RemoteLLM
from cielr_core.plan import PlanError
from cielr_core.reasoning import (
    AnswerError,
    RefinedScene,
    decompose_answer,
    decompose_detailed,
    decompose_request,
    labels_answer,
    labels_request,
    propose_labels,
    refine_answer,
    refine_request,
    refine_scene,
)
from cielr_core.reasoning.refine import NO_DETECTOR, NOTHING_NEW, SUFFICIENT
from cielr_core.scene import Scene, scene_from_detections, scene_to_json
from tests import scenes

W, H = 120, 80
INSTRUCTION = "What device can make the TV louder? Replace it with a floor lamp."
FOUND = {"speaker": (92, 8, 104, 20), "lamp": (4, 4, 9, 30)}


def make_scene() -> Scene:
    boxes = {1: ("tv", (10, 10, 50, 40)), 2: ("sofa", (60, 40, 110, 75)), 3: ("table", (20, 50, 50, 75))}
    return scenes.box_scene(W, H, boxes, score=lambda i: 0.9 - 0.1 * i)


def detect(labels, within):
    """Finds the FOUND objects it is asked for, nothing else."""
    hits = [(label, FOUND[label]) for label in labels if label in FOUND]
    masks = np.stack([scenes.box_mask(b, W, H) for _, b in hits]) if hits else np.zeros((0, H, W), bool)
    return scene_from_detections(W, H, np.array([b for _, b in hits], float).reshape(-1, 4), [0.5] * len(hits),
                                 [label for label, _ in hits], masks, start_id=100)


def llm_for(server) -> RemoteLLM:
    return RemoteLLM(server.base_url, "scripted", timeout=10, max_retries=0)


def verdict(sufficient=False, missing=(), within=None, note="checked"):
    return json.dumps({"note": note, "sufficient": sufficient, "missing_labels": list(missing),
                       "search_within": within})


def sent(request) -> tuple[list[dict], dict]:
    """The messages and the schema of a request, as the backend puts them on the wire."""
    return ([{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
            request.schema)


def received(recorded) -> tuple[list[dict], dict]:
    body = recorded.body
    return body["messages"], body["response_format"]["json_schema"]["schema"]


# ------------------------------------------------------------------------------ the same request

def test_labels_request_and_answer_are_the_backends(scripted_server):
    answer = '{"labels": ["Speakers", "tv", "sofa"]}'
    scripted_server.answer(answer)
    proposed = propose_labels(llm_for(scripted_server), INSTRUCTION, extra_labels="sofa, lamp")
    request = labels_request(INSTRUCTION)
    assert sent(request) == received(scripted_server.requests[0])
    assert json.loads(request.schema_json) == request.schema
    assert labels_answer(answer, "sofa, lamp") == proposed == ["sofa", "lamp", "speakers", "tv"]


def test_the_schema_in_the_user_text_is_what_a_server_without_structured_output_gets(scripted_server):
    for _ in range(2):  # json_schema, then llama.cpp's json_object + schema: refused as a format
        scripted_server.error(400, "response_format is not supported")
    scripted_server.answer('{"labels": ["speaker"]}')
    propose_labels(llm_for(scripted_server), INSTRUCTION)
    body = scripted_server.requests[-1].body
    assert body["response_format"] == {"type": "json_object"}
    request = labels_request(INSTRUCTION)
    assert body["messages"][-1]["content"] == request.user_with_schema
    assert request.user_with_schema.startswith(request.user + "\n\n")
    assert request.schema_json in request.user_with_schema


def test_decompose_request_and_answer_are_the_backends(scripted_server):
    answer = json.dumps({"actions": [{"op": "replace", "targets": [2, 2], "prompt": " a  floor lamp "}]})
    scripted_server.answer(answer)
    scene = make_scene()
    plan = decompose_detailed(scene, INSTRUCTION, llm_for(scripted_server)).plan
    assert sent(decompose_request(scene, INSTRUCTION)) == received(scripted_server.requests[0])
    assert decompose_answer(scene, answer) == plan
    assert plan.actions[0].targets == [2] and plan.actions[0].prompt == "a floor lamp"


def test_refine_by_hand_is_the_loop_round_for_round(scripted_server):
    answers = [verdict(missing=["speaker"]), verdict(missing=["lamp", "speaker"]), verdict(True, note="found")]
    for a in answers:
        scripted_server.answer(a)
    loop = refine_scene(make_scene(), INSTRUCTION, llm_for(scripted_server), detect, max_rounds=3)
    assert loop.stop == SUFFICIENT and loop.added == [4, 5]

    scene, more = make_scene(), []
    for k, answer in enumerate(answers):
        request = refine_request(scene, INSTRUCTION)
        assert sent(request) == received(scripted_server.requests[k]), f"round {k + 1}"
        result = refine_answer(scene, answer, detect)
        scene = result.scene
        more.append(result.stop is None)
    assert more == [True, True, False]
    assert isinstance(scene, RefinedScene) and result.stop == SUFFICIENT
    assert scene_to_json(scene) == scene_to_json(loop.scene)
    assert result.rounds == loop.rounds
    assert "Already searched for: speaker, lamp." in request.user
    # the traces differ only in the bound: by hand, the rounds are as many as the graph has
    assert result.text().splitlines()[:-1] == loop.text().splitlines()[:-1]
    assert result.text().splitlines()[-1].startswith("Stopped after 3 rounds: the LLM found the scene sufficient")


def test_a_stopped_chain_ignores_later_answers_and_inputs_are_not_changed():
    first = make_scene()
    before = scene_to_json(first)
    one = refine_answer(first, verdict(missing=["speaker"]), detect)
    two = refine_answer(one.scene, verdict(missing=["speaker"]), detect)  # searched already: nothing new
    assert (one.stop, two.stop) == (None, NOTHING_NEW) and len(one.scene.rounds) == 1
    three = refine_answer(two.scene, "not even JSON", detect)
    assert three.stop == NOTHING_NEW and len(three.rounds) == 2
    assert scene_to_json(three.scene) == scene_to_json(two.scene)
    assert scene_to_json(first) == before and len(one.scene.rounds) == 1
    assert "Stopped after 2 rounds: the last round added nothing new" in three.text()


def test_without_a_detector_the_chain_stops_and_says_what_it_would_look_for():
    result = refine_answer(make_scene(), verdict(missing=["speaker"]), None)
    assert result.stop == NO_DETECTOR and result.rounds[0].wanted == ["speaker"]
    assert len(result.scene.objects) == 3 and "no detector is connected" in result.text()


# ------------------------------------------------------------------------------ bad answers

def repair_sent(server, bad: str, good: str, run) -> str:
    """What the backend's repair round tells the model after ``bad``."""
    server.answer(bad)
    server.answer(good)
    run(llm_for(server))
    return server.requests[1].body["messages"][-1]["content"]


@pytest.mark.parametrize("bad, named", [
    ("Sure! Here is the plan.", "the answer holds no JSON object"),
    ('{"actions": [{"op": "replace", "targets": [99], "prompt": "a lamp"}]}',
     "there is no object #99 in the scene (its ids are #1-#3)"),
    ('{"actions": [{"op": "replace", "targets": [2], "prompt": "a lamp"', "the JSON is cut off"),
])
def test_an_invalid_plan_answer_is_refused_as_the_repair_round_states_it(scripted_server, bad, named):
    scene = make_scene()
    good = '{"actions": [{"op": "replace", "targets": [2], "prompt": "a lamp"}]}'
    repair = repair_sent(scripted_server, bad, good, lambda llm: decompose_detailed(scene, INSTRUCTION, llm))
    with pytest.raises(AnswerError) as info:
        decompose_answer(scene, bad)
    assert info.value.repair == repair and named in repair
    assert named in str(info.value) and "PlanAnswer" in str(info.value) and repair in str(info.value)


def test_a_plan_that_cannot_run_is_refused_as_the_plan_repair_states_it(scripted_server):
    scene = make_scene()
    bad = '{"actions": [{"op": "replace", "targets": [2], "prompt": "   "}]}'
    good = '{"actions": [{"op": "replace", "targets": [2], "prompt": "a lamp"}]}'
    repair = repair_sent(scripted_server, bad, good, lambda llm: decompose_detailed(scene, INSTRUCTION, llm))
    with pytest.raises(AnswerError, match=r"action 1 \(replace\) needs a prompt") as info:
        decompose_answer(scene, bad)
    assert info.value.repair == repair and "cannot run on this scene" in repair


def test_invalid_label_and_verdict_answers_name_the_problem(scripted_server):
    bad_labels = '{"labels": ["type\':\'array"]}'
    repair = repair_sent(scripted_server, bad_labels, '{"labels": ["speaker"]}',
                         lambda llm: propose_labels(llm, INSTRUCTION))
    with pytest.raises(AnswerError, match="labels.0: String should match pattern") as info:
        labels_answer(bad_labels)
    assert info.value.repair == repair

    bad_verdict = verdict(missing=["collar"], within=7)
    scripted_server.requests.clear()
    repair = repair_sent(scripted_server, bad_verdict, verdict(True),
                         lambda llm: refine_scene(make_scene(), INSTRUCTION, llm, detect, max_rounds=1))
    with pytest.raises(AnswerError, match="no object #7 in the scene") as info:
        refine_answer(make_scene(), bad_verdict, detect)
    assert info.value.repair == repair


@pytest.mark.parametrize("answer", ["", "   ", None, 42, "x" * 200_000])
def test_unusable_answers_are_input_errors(answer):
    with pytest.raises(InputError):
        labels_answer(answer)


def test_requests_check_their_inputs_before_anything_is_sent():
    with pytest.raises(InputError, match="instruction is empty"):
        refine_request(make_scene(), "  ")
    with pytest.raises(InputError, match="max_labels"):
        labels_request(INSTRUCTION, max_labels=99)
    with pytest.raises(PlanError, match="the scene has no objects"):
        decompose_request(Scene(W, H), INSTRUCTION)
