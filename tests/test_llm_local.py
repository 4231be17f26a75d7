"""The local transformers backend with constrained decoding: SmolLM2 (GGUF, the path taken without
llama-cpp-python) and a random-weight Llama."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
import torch
from pydantic import Field

from cielr_core.errors import ModelNotFoundError
from cielr_core.llm import LLM, Answer, Label, LLMError, LocalLLM, Message


class Labels(Answer):
    labels: list[Label] = Field(max_length=5)


class Target(Answer):
    id: int = Field(ge=0, le=99)
    relation: Literal["left_of", "right_of", "above", "below", "inside"]


class Verdict(Answer):
    """Every kind of field a reasoning answer uses: bool, bounded list, nested object, optional, float."""

    sufficient: bool
    missing_labels: list[Label] = Field(max_length=3)
    search_within: int | None = Field(ge=0, le=99)
    targets: list[Target] = Field(max_length=2)
    confidence: float = Field(ge=0, le=1)
    note: str = Field(max_length=60)


PROMPT = [
    Message(role="system", content="You answer in JSON."),
    Message(role="user", content="Instruction: remove the cup left of the lamp. "
                                 "Which objects should be detected? Give at most 5 short labels."),
]
VERDICT_PROMPT = [
    Message(role="system", content="You check whether a scene description suffices for an edit. "
                                   "Answer in JSON."),
    Message(role="user", content="Scene: 0 cup (left, bottom); 1 lamp (right, middle). "
                                 "Instruction: make the cup's handle red. Is the scene sufficient?"),
]


# -- SmolLM2-135M-Instruct from the GGUF file, through transformers --------------------------------

@pytest.fixture(scope="module")
def smollm2(smollm2_gguf) -> LocalLLM:
    llm = LocalLLM(smollm2_gguf, temperature=0, seed=0, max_new_tokens=256, backend="transformers")
    llm.model  # noqa: B018 (load once here, ~16 s)
    return llm


@pytest.mark.slow
@pytest.mark.parametrize(("schema", "prompt"), [(Labels, PROMPT), (Verdict, VERDICT_PROMPT)])
def test_smollm2_gguf_answers_are_schema_valid(smollm2, schema, prompt):
    assert isinstance(smollm2, LLM)
    result = smollm2.complete(prompt, schema)
    assert isinstance(result, schema)
    assert smollm2.usage.repairs == 0, "constrained decoding: the first answer always parses"


@pytest.mark.slow
def test_smollm2_greedy_is_repeatable_and_exposes_the_module(smollm2, smollm2_gguf):
    again = LocalLLM(smollm2_gguf, temperature=0, seed=5, max_new_tokens=256, backend="transformers")
    assert again.model is smollm2.model, "one load per file, shared"
    assert isinstance(smollm2.model, torch.nn.Module) and smollm2.to("cpu") is smollm2
    assert smollm2.complete(PROMPT, Labels) == again.complete(PROMPT, Labels)


# -- a tiny random-weight Llama (tests/fixtures/llm_servers.py) -----------------------------------

@pytest.fixture(scope="module")
def tiny(tiny_chat_model) -> LocalLLM:
    return LocalLLM(tiny_chat_model, max_new_tokens=400)


def test_tiny_tokenizer_can_spell_any_text(tiny):
    """Byte-level: the grammar can emit every character an answer may need."""
    text = '{"labels":["cup","größe ☃ 猫","tab\there","\\\"q\""],"n":-12.5e3,"ok":null}\u0001'
    ids = tiny.tokenizer.encode(text, add_special_tokens=False)
    assert tiny.tokenizer.decode(ids) == text


@pytest.mark.parametrize(("temperature", "seed"), [(0.0, 0), (1.0, 1), (1.5, 2)])
def test_random_weights_still_give_schema_valid_answers(tiny, temperature, seed):
    tiny.temperature, tiny.seed = temperature, seed
    assert isinstance(tiny.complete(VERDICT_PROMPT, Verdict), Verdict)
    assert isinstance(tiny.complete(PROMPT, Labels), Labels)


def test_same_seed_same_answer(tiny_chat_model):
    def ask(seed: int) -> Verdict:
        llm = LocalLLM(tiny_chat_model, temperature=1.0, seed=seed, max_new_tokens=400)
        return llm.complete(VERDICT_PROMPT, Verdict)

    first, second, other = ask(7), ask(7), ask(8)
    assert first == second
    assert other != first, "a different seed samples differently"


def test_shared_prefix_reuses_the_kv_cache_and_answers_as_a_fresh_model(tiny_chat_model):
    """The second prompt shares the first one's system text: only the rest is evaluated, and the answer
    is the one a freshly loaded model gives."""
    from cielr_core.llm.local import clear_cache

    follow_up = [PROMPT[0], Message(role="user", content="Instruction: paint the lamp red. Which objects?")]
    clear_cache()
    llm = LocalLLM(tiny_chat_model, max_new_tokens=400)
    llm.complete(PROMPT, Labels)
    first = llm.usage.prompt_evaluated
    assert first == llm.usage.prompt_tokens, "nothing to reuse yet"
    cached = llm.complete(follow_up, Labels)
    assert llm.usage.prompt_evaluated - first < llm.usage.prompt_tokens - first, "the shared prefix was reused"
    clear_cache()
    assert LocalLLM(tiny_chat_model, max_new_tokens=400).complete(follow_up, Labels) == cached


def test_caller_random_state_is_untouched(tiny):
    tiny.temperature, tiny.seed = 1.0, 3
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.complete(PROMPT, Labels)
    assert torch.equal(torch.rand(3), expected)


def test_template_without_system_role_gets_it_folded_in(tiny_chat_model, tmp_path):
    """Some chat templates (Gemma's) refuse a system message."""
    import shutil

    folder = tmp_path / "no-system"
    shutil.copytree(tiny_chat_model, folder)
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}" + template)
    with_system, user_only = LocalLLM(folder, max_new_tokens=400), LocalLLM(folder, max_new_tokens=400)
    assert isinstance(with_system.complete(PROMPT, Labels), Labels)
    user_only.complete(PROMPT[1:], Labels)
    assert with_system.usage.prompt_tokens > user_only.usage.prompt_tokens, "the system text is in the prompt"


def test_truncated_answer_is_a_clear_error(tiny_chat_model):
    llm = LocalLLM(tiny_chat_model, temperature=1.0, seed=0, max_new_tokens=3)
    with pytest.raises(LLMError, match="cut off"):
        llm.complete(VERDICT_PROMPT, Verdict)


def test_image_is_refused(tiny):
    with pytest.raises(LLMError, match="text only"):
        tiny.complete(PROMPT, Labels, image=np.zeros((4, 4, 3), np.uint8))


def test_missing_model_lists_the_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nothing-here"):
        LocalLLM(tmp_path / "nothing-here.gguf")


def test_remote_code_is_never_run(tmp_path):
    """A folder whose config asks for custom code: refused, and the code is never imported."""
    folder = tmp_path / "custom"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    (folder / "config.json").write_text(
        '{"model_type": "evil", "architectures": ["EvilForCausalLM"], '
        '"auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilForCausalLM"}}')
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (folder / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": ["evil.Tok", null]}}')
    with pytest.raises(LLMError, match="Cannot load the local LLM"):
        LocalLLM(folder).complete(PROMPT, Labels)
    assert not marker.exists()
