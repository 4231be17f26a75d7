"""The text-encoder LLM adapter (nodes/llm_clip.py) without a server: feature detection, image detection on the
real test-only CLIP, and the faults a newer core can give that no core installed here can produce (an encoder
that is not an LLM, ids returned as a batch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cielr_core.llm.base import LLMError
from devkit.comfy_nodes.textgen import TextGenCLIP
from devkit.comfyui import import_comfyui
from nodes.comfy_internals import can_generate
from nodes.comfy_internals import first_sequence as _first_sequence

import_comfyui()  # the node classes are built on comfy_api
from nodes.llm_clip import ClipGenerate, reads_images, require_generation, takes_system_prompt  # noqa: E402


class Plain:
    """0.3.75's CLIP, as far as this node looks (comfy/sd.py): tokenize, no generate or decode."""

    def tokenize(self, text, return_word_ids=False, **kwargs):
        return {"l": [[(1, 1.0)]]}


def test_a_clip_without_generation_names_the_feature_and_the_other_nodes():
    assert not can_generate(Plain()) and can_generate(TextGenCLIP("unused.gguf"))
    with pytest.raises(LLMError) as error:
        require_generation(Plain())
    message = str(error.value)
    assert "'generate' and 'decode'" in message and "Generate Text" in message and "Update ComfyUI" in message
    assert "CIELR LLM (local)" in message and "CIELR LLM (OpenAI-compatible server)" in message


def test_an_encoder_that_is_not_an_llm_is_a_clear_error():
    """A newer core's CLIP has generate for every encoder; a CLIP-L raises AttributeError inside it."""

    class ClipL(Plain):
        def generate(self, tokens, **kwargs):
            raise AttributeError("'CLIPTextModel' object has no attribute 'generate'")

        def decode(self, token_ids, skip_special_tokens=True):
            return ""

    with pytest.raises(LLMError, match="cannot generate text.*Qwen2.5-VL"):
        ClipGenerate(ClipL(), 0.0, 0, 64)([{"role": "user", "content": "hi"}], None)


def test_ids_as_one_sequence_or_a_batch_of_one():
    assert _first_sequence([1, 2, 3]) == [1, 2, 3] and _first_sequence([[1, 2, 3]]) == [1, 2, 3]
    assert _first_sequence(torch.tensor([[1, 2]])).tolist() == [1, 2]
    assert _first_sequence(torch.tensor([1, 2])).tolist() == [1, 2]
    assert _first_sequence([torch.tensor([1, 2])]).tolist() == [1, 2]


def test_images_are_detected_from_the_tokens(smollm2_gguf, tmp_path):
    log = tmp_path / "clip.log"
    assert reads_images(TextGenCLIP(smollm2_gguf, reads_images=True, log_file=str(log)))
    assert not reads_images(TextGenCLIP(smollm2_gguf, reads_images=False))
    probes = [json.loads(line) for line in log.read_text().splitlines()]
    assert [p["image"] for p in probes] == [None, [1, 64, 64, 3]]


class OlderTokenizer(TextGenCLIP):
    """A core whose tokenizers know no system_prompt (it reaches them in **kwargs and is ignored)."""

    def tokenize(self, text, return_word_ids=False, **kwargs):
        kwargs.pop("system_prompt", None)
        return super().tokenize(text, return_word_ids, **kwargs)


def test_the_system_prompt_goes_where_the_tokenizer_takes_it(smollm2_gguf, tmp_path):
    messages = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Say hi."}]
    for clip, separate in ((TextGenCLIP, True), (OlderTokenizer, False)):
        log = tmp_path / f"{clip.__name__}.log"
        instance = clip(smollm2_gguf, log_file=str(log))
        assert takes_system_prompt(instance) is separate
        log.unlink()
        ClipGenerate(instance, 0.0, 0, 8, system_prompt=separate)(messages, None)
        sent = json.loads(log.read_text().splitlines()[0])
        if separate:
            assert sent["system_prompt"] == "Rules." and sent["text"] == "Say hi."
        else:
            assert "system_prompt" not in sent and sent["text"] == "Rules.\n\nSay hi."


def test_the_generator_sends_the_image_as_an_image_batch(smollm2_gguf, tmp_path):
    log = tmp_path / "clip.log"
    generate = ClipGenerate(TextGenCLIP(smollm2_gguf, reads_images=True, log_file=str(log)), 0.7, 5, 16)
    photo = np.zeros((30, 40, 3), np.uint8)
    assert isinstance(generate([{"role": "user", "content": "Say hi."}], photo), str)
    tokenize, gen = (json.loads(line) for line in log.read_text().splitlines())
    assert tokenize["image"] == [1, 30, 40, 3] and tokenize["text"] == "Say hi."
    assert gen["do_sample"] is True and gen["temperature"] == 0.7 and gen["seed"] == 5 and gen["max_length"] == 16
    assert (gen["top_k"], gen["top_p"], gen["min_p"], gen["repetition_penalty"]) == (0, 1.0, 0.0, 1.0)
