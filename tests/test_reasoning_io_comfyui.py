"""Any LLM node as the reasoner, in a real ComfyUI through POST /prompt.

The built-in path (CIELR LLM (OpenAI-compatible server) talking to the scripted server) runs first and
records every request and answer. The same answers, typed into core String (Multiline) nodes between the
Request and Answer nodes, must then give the same labels, scene and plan; the Request nodes must show
exactly the requests the server received.
"""

from __future__ import annotations

import json
import shutil

import pytest

from cielr_core.llm import parse_answer
from cielr_core.reasoning import LabelList
from devkit.comfyui import describe, execution_error
from tests.conftest import CIEBENCH
from tests.fixtures.llm_servers import Reply, first_enum, schema_name

pytestmark = pytest.mark.slow

INSTRUCTION = json.loads((CIEBENCH / "data.json").read_text())["0"]["instruction"]
PHOTO = "cielr_reasoning_io_photo.png"
THRESHOLDS = {"box_threshold": 0.0, "text_threshold": 0.0}
# Perception takes fixed labels in every graph here, so ComfyUI runs it once and serves it from its cache
# to the next graph that has it (the tests that need it come first); the labels steps are compared on
# their own outputs.
LABELS = "tv, speaker, floor lamp"


@pytest.fixture(scope="module")
def server(comfyui):
    (comfyui.base / "input").mkdir(exist_ok=True)
    shutil.copy(CIEBENCH / "0" / "0.png", comfyui.base / "input" / PHOTO)
    return comfyui


def models(server) -> dict:
    gdino = json.loads((server.base / "models" / "meta.json").read_text())["gdino"]
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "2": {"class_type": "CIELRGroundingDINOLoader",
              "inputs": {"model_name": gdino, "text_encoder": "bert-base-uncased", "device": "auto"}},
        "3": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": "tiny_sam.pth", "device": "auto"}},
    }


def perceive() -> dict:
    return {
        "6": {"class_type": "CIELRPerceive", "inputs": {"image": ["1", 0], "detector": ["2", 0],
                                                        "segmenter": ["3", 0], "labels": LABELS, **THRESHOLDS}},
        "7": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["6", 0]}},
    }


def show(node: str, output: int = 0) -> dict:
    return {"class_type": "PreviewAny", "inputs": {"source": [node, output]}}


def built_in(server, base_url: str) -> dict:
    """Propose Labels; Perceive -> Build Scene -> Refine Scene (2 rounds) -> Decompose, on the remote LLM."""
    return {
        **models(server),
        "4": {"class_type": "CIELRLLMRemote",
              "inputs": {"base_url": base_url, "model": "scripted", "api_key_env": "", "temperature": 0.0,
                         "seed": 0, "timeout": 60.0, "vision": False}},
        "5": {"class_type": "CIELRProposeLabels",
              "inputs": {"llm": ["4", 0], "instruction": INSTRUCTION, "extra_labels": "tv"}},
        **perceive(),
        "8": {"class_type": "CIELRRefineScene",
              "inputs": {"image": ["1", 0], "scene": ["7", 0], "llm": ["4", 0], "instruction": INSTRUCTION,
                         "detector": ["2", 0], "segmenter": ["3", 0], "max_rounds": 2, **THRESHOLDS}},
        "9": {"class_type": "CIELRDecompose", "inputs": {"scene": ["8", 0], "llm": ["4", 0],
                                                         "instruction": INSTRUCTION}},
        "12": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["8", 0]}},
        "labels": show("5"), "scene": show("12", 1), "trace": show("8", 1), "plan": show("9", 1),
    }


def text(answer: str) -> dict:
    return {"class_type": "PrimitiveStringMultiline", "inputs": {"value": answer}}


def request(kind: str, key: str, scene: list | None = None) -> dict:
    inputs = {"instruction": INSTRUCTION, "schema_in_prompt": False, **({"scene": scene} if scene else {})}
    return {key: {"class_type": f"CIELR{kind}Request", "inputs": inputs},
            **{f"{key}.{part}": show(key, k) for k, part in enumerate(("system", "user", "schema"))}}


def refine_round(key: str, scene: list, answer: list) -> dict:
    return {key: {"class_type": "CIELRRefineAnswer",
                  "inputs": {"image": ["1", 0], "scene": scene, "answer": answer, "detector": ["2", 0],
                             "segmenter": ["3", 0], **THRESHOLDS}}}


def by_hand(server, answers: list[str]) -> dict:
    """The same graph with Request / Answer nodes and the answers in String (Multiline) nodes; a third
    refinement round whose answer would fail if it were ever computed."""
    labels, verdict1, verdict2, plan = answers
    return {
        **models(server),
        **request("Labels", "q_labels"),
        "a_labels": text(labels),
        "labels_answer": {"class_type": "CIELRLabelsAnswer",
                          "inputs": {"answer": ["a_labels", 0], "extra_labels": "tv"}},
        **perceive(),
        **request("Refine", "q_round1", ["7", 0]),
        "a_round1": text(verdict1),
        **refine_round("round1", ["7", 0], ["a_round1", 0]),
        **request("Refine", "q_round2", ["round1", 0]),
        "a_round2": text(verdict2),
        **refine_round("round2", ["round1", 0], ["a_round2", 0]),
        # the chain stopped in round 2: this answer (an empty answer read as labels, an error) is never run
        "never": {"class_type": "CIELRLabelsAnswer", "inputs": {"answer": "", "extra_labels": ""}},
        **refine_round("round3", ["round2", 0], ["never", 0]),
        **request("Decompose", "q_plan", ["round3", 0]),
        "a_plan": text(plan),
        "plan_answer": {"class_type": "CIELRDecomposeAnswer", "inputs": {"scene": ["round3", 0],
                                                                         "answer": ["a_plan", 0]}},
        "12": {"class_type": "CIELRBuildScene", "inputs": {"image": ["1", 0], "scene": ["round3", 0]}},
        "labels": show("labels_answer"), "scene": show("12", 1), "trace": show("round3", 1),
        "plan": show("plan_answer", 1), "more1": show("round1", 2), "more3": show("round3", 2),
    }


def responder(body: dict) -> Reply:
    """Answers that fit whatever scene the tiny detector produced: round 1 asks for a lamp, round 2 is
    satisfied, the plan replaces the first object the schema allows."""
    name = schema_name(body)
    if name == "LabelList":
        answer = {"labels": ["speaker", "floor lamp"]}
    elif name == "SceneVerdict":
        first = "Already searched for: nothing yet." in body["messages"][-1]["content"]
        answer = {"note": "no lamp yet" if first else "enough", "sufficient": not first,
                  "missing_labels": ["lamp"] if first else [], "search_within": None}
    else:
        target = first_enum(body["response_format"]["json_schema"]["schema"])
        answer = {"actions": [{"op": "replace", "targets": [target], "prompt": "a floor lamp"}]}
    return Reply(content=json.dumps(answer))


def outputs(entry: dict) -> dict[str, str]:
    assert execution_error(entry) is None, describe(execution_error(entry))
    return {node: shown["text"][0] for node, shown in entry["outputs"].items() if "text" in shown}


def test_answers_through_string_nodes_give_the_built_in_scene_and_plan(server, scripted_server):
    scripted_server.responder = responder
    built = outputs(server.run(built_in(server, scripted_server.base_url), timeout=600))
    bodies = [r.body for r in scripted_server.requests]
    assert [schema_name(b) for b in bodies] == ["LabelList", "SceneVerdict", "SceneVerdict", "PlanAnswer"]
    assert "Stopped after 2 of 2 rounds: the LLM found the scene sufficient" in built["trace"]
    assert "Added #" in built["trace"], "round 1 added objects, so round 2 saw a grown scene"
    answers = [responder(b).content for b in bodies]

    hand = outputs(server.run(by_hand(server, answers), timeout=600))
    assert len(scripted_server.requests) == 4, "the by-hand graph sends nothing"
    for key, body in zip(("q_labels", "q_round1", "q_round2", "q_plan"), bodies):
        assert [hand[f"{key}.system"], hand[f"{key}.user"]] == [m["content"] for m in body["messages"]], key
        assert json.loads(hand[f"{key}.schema"]) == body["response_format"]["json_schema"]["schema"], key
    assert "Already searched for: lamp." in hand["q_round2.user"]

    assert hand["labels"] == built["labels"] == "tv, speaker, floor lamp"
    assert hand["scene"] == built["scene"]
    assert hand["plan"] == built["plan"]
    assert (hand["more1"], hand["more3"]) == ("True", "False")
    # the trace is the loop's, except that by hand the rounds are as many as the graph has
    assert hand["trace"].splitlines()[:-1] == built["trace"].splitlines()[:-1]
    assert hand["trace"].splitlines()[-1].startswith("Stopped after 2 rounds: the LLM found the scene sufficient")


@pytest.mark.parametrize("answer, named", [
    ('{"actions": [{"op": "replace", "targets": [999], "prompt": "a lamp"}]}', "there is no object #999"),
    ('{"actions": [{"op": "recolor", "targets": [1], "prompt": " "}]}', "action 1 (recolor) needs a prompt"),
    ("I would replace the speaker.", "the answer holds no JSON object"),
])
def test_an_invalid_answer_fails_with_the_problem_named(server, answer, named):
    prompt = {**models(server), **perceive(),
              "a": text(answer),
              "plan": {"class_type": "CIELRDecomposeAnswer", "inputs": {"scene": ["7", 0], "answer": ["a", 0]}},
              "show": show("plan", 1)}
    error = execution_error(server.run(prompt, timeout=300))
    assert error is not None and error["node_type"] == "CIELRDecomposeAnswer"
    message = error["exception_message"]
    assert named in message and "A repair round would tell the LLM" in message


def test_a_bad_label_answer_names_the_label(server):
    bad = '{"labels": ["the thing that makes the TV louder, probably"]}'
    assert parse_answer(bad, LabelList)[0] is None
    prompt = {"a": {"class_type": "CIELRLabelsAnswer", "inputs": {"answer": bad, "extra_labels": ""}},
              "show": show("a")}
    error = execution_error(server.run(prompt, timeout=120))
    assert error is not None and "labels.0" in error["exception_message"]


def test_the_schema_in_the_prompt_is_what_the_server_gets_without_structured_output(server):
    prompt = request("Labels", "q")
    prompt["q"]["inputs"]["schema_in_prompt"] = True
    shown = outputs(server.run(prompt, timeout=120))
    assert shown["q.user"].endswith("that follows this JSON schema: " + shown["q.schema"])
