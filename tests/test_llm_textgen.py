"""TextGenLLM: an LLM over a plain "messages (+ image) -> text" generator.

The real generator is the node's adapter (nodes/llm_clip.py) over the test-only CLIP of
devkit/comfy_nodes/textgen.py (upstream ComfyUI's text generation contract over the real SmolLM2
GGUF). Scripted generators appear only for answers a real model cannot be made to give on demand (a
broken first answer, a thinking block, text of the wrong type).
"""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.llm import TextGenLLM
from cielr_core.llm.base import IMAGE_MAX_SIDE, LLMAnswerError, LLMError, Message
from cielr_core.llm.textgen import PREVIOUS_ANSWER, drop_thinking, one_turn
from cielr_core.plan import Plan
from cielr_core.reasoning import decompose
from cielr_core.reasoning.answers import LabelList
from cielr_core.scene import Part, build_scene, scene_from_parts

ASK = [Message(role="system", content="You name objects."), Message(role="user", content="Name two objects.")]


class Scripted:
    """Replays answers and records what each call received."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[tuple[list, np.ndarray | None]] = []

    def __call__(self, messages, image):
        self.calls.append((messages, image))
        return self.answers.pop(0)


def test_the_schema_is_stated_and_a_broken_answer_gets_one_repair():
    gen = Scripted('{"labels": ["lamp"', '{"labels": ["lamp", "sofa"]}')
    llm = TextGenLLM(gen, name="test generator")
    assert llm.complete(ASK, LabelList).labels == ["lamp", "sofa"]
    (first, _), (repair, _) = gen.calls
    assert "follows this JSON schema" in first[-1]["content"] and '"labels"' in first[-1]["content"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == '{"labels": ["lamp"' and "not valid" in repair[3]["content"]
    assert llm.usage.calls == 2 and llm.usage.repairs == 1 and llm.usage.answers == 1


def test_a_second_broken_answer_is_a_clear_error():
    llm = TextGenLLM(Scripted("no idea", "still no idea"))
    with pytest.raises(LLMAnswerError, match="not a valid LabelList even after one repair round"):
        llm.complete(ASK, LabelList)


def test_a_thinking_block_is_dropped_before_parsing():
    answer = '<think>The user wants {objects}. {"labels": ["x"]} maybe?</think>\n{"labels": ["cup"]}'
    assert TextGenLLM(Scripted(answer)).complete(ASK, LabelList).labels == ["cup"]
    assert drop_thinking("  <think>a</think> b") == "b" and drop_thinking('{"a": "<think>"}') == '{"a": "<think>"}'


def test_images_only_where_the_generator_reads_them():
    photo = np.zeros((1500, 3000, 3), np.uint8)
    with pytest.raises(LLMError, match="reads text only"):
        TextGenLLM(Scripted()).complete(ASK, LabelList, image=photo)
    gen = Scripted('{"labels": ["cup"]}')
    TextGenLLM(gen, supports_images=True).complete(ASK, LabelList, image=photo)
    (_, sent), = gen.calls
    assert sent.shape == (IMAGE_MAX_SIDE // 2, IMAGE_MAX_SIDE, 3) and sent.dtype == np.uint8
    assert photo.shape == (1500, 3000, 3)  # the caller's image is untouched


def test_an_answer_that_is_not_text_is_a_clear_error():
    with pytest.raises(LLMError, match="answered with list, not text"):
        TextGenLLM(Scripted([1, 2])).complete(ASK, LabelList)


def test_one_turn_keeps_every_message_in_order():
    wire = [{"role": "system", "content": "rules"}, {"role": "user", "content": "task"},
            {"role": "assistant", "content": "{bad"}, {"role": "user", "content": "fix it"}]
    assert one_turn(wire) == f"rules\n\ntask\n\n{PREVIOUS_ANSWER}\n{{bad\n\nfix it"
    with pytest.raises(LLMError, match="text messages"):
        one_turn([{"role": "user", "content": [{"type": "text", "text": "x"}]}])


def test_a_plan_from_the_test_clip_over_smollm2(smollm2_gguf, tmp_path):
    """The generator is the node's adapter over upstream's CLIP contract, here the test-only CLIP over the real
    SmolLM2: the plan passes the same validation as every other backend's."""
    import json

    from devkit.comfy_nodes.textgen import TextGenCLIP
    from devkit.comfyui import import_comfyui

    import_comfyui()  # the node classes are built on comfy_api
    from nodes.llm_clip import ClipGenerate

    clip = TextGenCLIP(smollm2_gguf, log_file=str(tmp_path / "clip.log"))
    w, h = 96, 64
    lamp, table = np.zeros((h, w), bool), np.zeros((h, w), bool)
    lamp[5:20, 10:30], table[40:60, 10:50] = True, True
    scene = build_scene(scene_from_parts(w, h, [Part("lamp", 0.9, mask=lamp), Part("table", 0.9, mask=table)]).scene)
    llm = TextGenLLM(ClipGenerate(clip, temperature=0.0, seed=0, max_tokens=256))
    plan = decompose(scene, "Remove the lamp.", llm)
    assert isinstance(plan, Plan) and plan.actions
    assert all(t in (1, 2) for a in plan.actions for t in a.targets)
    events = [json.loads(line) for line in (tmp_path / "clip.log").read_text().splitlines()]
    assert events[0]["event"] == "tokenize" and events[0]["skip_template"] is False and events[0]["thinking"] is False
    assert events[1]["event"] == "generate" and events[1]["schema"] and events[1]["new_tokens"] > 0
