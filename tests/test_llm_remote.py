"""The OpenAI-compatible backend: a real llama.cpp server with SmolLM2, and a scripted server for
the fallback, repair and fault paths (fixtures in tests/fixtures/llm_servers.py)."""

from __future__ import annotations

import base64
import io
import logging
import time

import numpy as np
import pytest
from pydantic import Field

from cielr_core.errors import InputError
from cielr_core.llm import (
    LLM,
    Answer,
    Label,
    LLMAnswerError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    Message,
    RemoteLLM,
    strict_schema,
)


class Labels(Answer):
    labels: list[Label] = Field(max_length=5)


class SomeLabels(Answer):
    """At least one label, so that the server's grammar has strings and a list bound to honour."""

    labels: list[Label] = Field(min_length=1, max_length=5)


PROMPT = [
    Message(role="system", content="You list the objects worth detecting in a photo. Answer in JSON."),
    Message(role="user", content="Instruction: replace the thing that makes the TV louder with a floor lamp. "
                                 "Which objects should be detected? Give at most 5 short labels."),
]


def scripted(server, **kw) -> RemoteLLM:
    return RemoteLLM(server.base_url, "scripted-model", **{"timeout": 10, **kw})


# -- the real llama.cpp server ---------------------------------------------------------------

@pytest.mark.slow
def test_llama_server_answers_schema_valid_labels(llama_server):
    llm = RemoteLLM(llama_server.base_url, llama_server.model, temperature=0, seed=7, timeout=120)
    assert isinstance(llm, LLM)
    result = llm.complete(PROMPT, SomeLabels)
    assert isinstance(result, SomeLabels) and 1 <= len(result.labels) <= 5
    assert all(1 <= len(label) <= 40 for label in result.labels)
    # llama-cpp-python takes the schema inside a json_object response_format and decodes with it.
    assert llm.format == "json_object_schema"
    assert llm.usage.repairs == 0 and llm.usage.first_valid == 1
    assert llm.usage.prompt_tokens > 0 and llm.usage.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_llama_server_repeatable_with_same_seed(llama_server, temperature):
    def ask() -> SomeLabels:
        return RemoteLLM(llama_server.base_url, llama_server.model, temperature=temperature, seed=3,
                         timeout=120).complete(PROMPT, SomeLabels)

    assert ask() == ask()


# -- structured output fallback ---------------------------------------------------------------

def test_sends_strict_json_schema(scripted_server):
    scripted_server.answer({"labels": ["tv", "speaker"]})
    llm = scripted(scripted_server, temperature=0.2, seed=11)
    assert llm.complete(PROMPT, Labels) == Labels(labels=["tv", "speaker"])
    request = scripted_server.requests[0]
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert (body["model"], body["temperature"], body["seed"]) == ("scripted-model", 0.2, 11)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["labels"]
    assert schema["properties"]["labels"]["maxItems"] == 5
    assert body["messages"] == [m.model_dump() for m in PROMPT], "no schema hint needed in json_schema mode"


def test_json_schema_rejected_falls_back_to_json_mode_with_schema(scripted_server):
    scripted_server.error(400, "response_format type 'json_schema' is not supported")
    scripted_server.answer({"labels": ["cup"]})
    scripted_server.answer({"labels": ["lamp"]})
    llm = scripted(scripted_server)
    assert llm.complete(PROMPT, Labels).labels == ["cup"]
    first, second = scripted_server.requests
    assert first.body["response_format"]["type"] == "json_schema"
    assert second.body["response_format"] == {"type": "json_object", "schema": strict_schema(Labels)}
    assert second.body["messages"] == [m.model_dump() for m in PROMPT], "the server enforces it: no copy"
    # The backend remembers: the next call goes straight to the format that worked.
    assert llm.complete(PROMPT, Labels).labels == ["lamp"]
    assert len(scripted_server.requests) == 3
    assert scripted_server.requests[2].body["response_format"]["type"] == "json_object"


def test_schema_goes_into_a_repair_round_last_when_the_server_may_ignore_it(scripted_server):
    scripted_server.error(400, "response_format type 'json_schema' is not supported")
    scripted_server.answer({"labels": "cup"})  # a server that took the schema field but ignored it
    scripted_server.answer({"labels": ["cup"]})
    assert scripted(scripted_server).complete(PROMPT, Labels).labels == ["cup"]
    repair = scripted_server.requests[2].body["messages"]
    assert repair[:2] == [m.model_dump() for m in PROMPT], "the rules stay a prefix the server can reuse"
    assert repair[-1]["role"] == "user" and '"maxItems":5' in repair[-1]["content"], "the schema, last"


def test_server_error_naming_response_format_is_a_rejection_not_retried(scripted_server):
    # What llama-cpp-python 0.3.36 answers to a json_schema response_format.
    scripted_server.error(500, "1 validation error: {'loc': ('body', 'response_format', 'type'), "
                               "'msg': \"Input should be 'text' or 'json_object'\"}")
    scripted_server.answer({"labels": ["cup"]})
    llm = scripted(scripted_server, max_retries=3)
    assert llm.complete(PROMPT, Labels).labels == ["cup"]
    assert len(scripted_server.requests) == 2 and llm.format == "json_object_schema"


def test_fallback_chain_ends_in_plain_text(scripted_server):
    scripted_server.error(422, "Unsupported response_format: json_schema")
    scripted_server.error(400, "Unknown parameter: 'response_format.schema'")
    scripted_server.error(400, "response_format json_object is not supported by this model")
    scripted_server.answer('Here are the labels:\n```json\n{"labels": ["remote control"]}\n```')
    llm = scripted(scripted_server)
    assert llm.complete(PROMPT, Labels).labels == ["remote control"]
    sent = [r.body.get("response_format", {"type": "plain"}) for r in scripted_server.requests]
    assert [f["type"] for f in sent] == ["json_schema", "json_object", "json_object", "plain"]
    assert "schema" in sent[1] and "schema" not in sent[2]
    assert llm.format == "plain"


def test_other_client_errors_are_not_format_fallbacks(scripted_server):
    scripted_server.error(404, "model 'scripted-model' not found")
    with pytest.raises(LLMError, match=r"HTTP 404.*not found.*/v1") as info:
        scripted(scripted_server).complete(PROMPT, Labels)
    assert not isinstance(info.value, LLMConnectionError)
    assert len(scripted_server.requests) == 1


# -- repair -------------------------------------------------------------------------------------

def test_malformed_answer_gets_one_repair_round(scripted_server):
    scripted_server.answer('Sure! ```json\n{"labels": ["cup",}\n```')
    scripted_server.answer('{"labels": ["cup"]}')
    llm = scripted(scripted_server)
    assert llm.complete(PROMPT, Labels).labels == ["cup"]
    repair = scripted_server.requests[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": 'Sure! ```json\n{"labels": ["cup",}\n```'}
    assert repair[-1]["role"] == "user" and "malformed" in repair[-1]["content"]
    assert (llm.usage.repairs, llm.usage.first_valid, llm.usage.answers) == (1, 0, 1)


@pytest.mark.parametrize(("answer", "problem"), [
    ("I cannot help with that.", "no JSON object"),
    ('{"labels": ["cu', "cut off"),
    ('{"labels": ["cup"]', "cut off"),
    ('{"labels": ["cup" "lamp"]}', "malformed"),
    ('{"labels": [{"id": 1}', "cut off before it ends (answer too long for max tokens?); "
                              "the next JSON object in it: labels: Field required"),
    ('{"labels": "cup"}', "labels: Input should be a valid list"),
    ('{"labels": ["a", "b", "c", "d", "e", "f"]}', "labels: List should have at most 5 items"),
    ('{"labels": ["cup"], "code": "import os"}', "code: Extra inputs are not permitted"),
    ('{"labels": [""]}', "labels.0: String should have at least 1 character"),
    ("", "empty"),
])
def test_repair_that_fails_names_the_problem(scripted_server, answer, problem):
    scripted_server.answer("not json at all")
    scripted_server.answer(answer)
    with pytest.raises(LLMAnswerError, match="Labels") as info:
        scripted(scripted_server).complete(PROMPT, Labels)
    assert problem in info.value.problem and problem in str(info.value)
    assert len(scripted_server.requests) == 2, "exactly one repair round"


# -- faults ---------------------------------------------------------------------------------------

def test_slow_server_times_out_within_the_bound(scripted_server):
    scripted_server.answer({"labels": ["cup"]}, delay=10)
    llm = scripted(scripted_server, timeout=1.0, max_retries=2)
    start = time.monotonic()
    with pytest.raises(LLMTimeoutError, match=r"127\.0\.0\.1.*within 1 s"):
        llm.complete(PROMPT, Labels)
    assert time.monotonic() - start < 1.0 + 1.5
    assert len(scripted_server.requests) == 1, "a timeout is not retried"


def test_server_down_is_a_clear_error(closed_port_url):
    llm = RemoteLLM(closed_port_url, "any", timeout=5, max_retries=1)
    start = time.monotonic()
    expected = r"127\.0\.0\.1.*failed 2 times.*connection refused.*running"
    with pytest.raises(LLMConnectionError, match=expected):
        llm.complete(PROMPT, Labels)
    assert time.monotonic() - start < 5


def test_retries_on_500_are_bounded(scripted_server):
    for _ in range(6):
        scripted_server.error(500, "llama exploded")
    with pytest.raises(LLMConnectionError, match=r"failed 3 times; last: HTTP 500: llama exploded"):
        scripted(scripted_server, max_retries=2).complete(PROMPT, Labels)
    assert len(scripted_server.requests) == 3


@pytest.mark.parametrize("status", [429, 502, 503])
def test_transient_errors_are_retried(scripted_server, status):
    scripted_server.error(status, "busy")
    scripted_server.answer({"labels": ["sofa"]})
    assert scripted(scripted_server, max_retries=1).complete(PROMPT, Labels).labels == ["sofa"]
    assert len(scripted_server.requests) == 2


def test_reply_that_is_not_a_chat_completion(scripted_server):
    scripted_server.error(200, "this is some other API")
    with pytest.raises(LLMError, match="not answer like an OpenAI chat completion"):
        scripted(scripted_server).complete(PROMPT, Labels)


# -- the API key ------------------------------------------------------------------------------

SECRET = "sk-test-0123456789abcdef"


def test_api_key_from_named_env_var_never_shown(scripted_server, monkeypatch, caplog):
    monkeypatch.setenv("CIELR_TEST_API_KEY", SECRET)
    scripted_server.error(400, "response_format json_schema unsupported")
    scripted_server.answer("oops")
    scripted_server.answer({"labels": ["tv"]})
    llm = scripted(scripted_server, api_key_env="CIELR_TEST_API_KEY")
    with caplog.at_level(logging.DEBUG):
        assert llm.complete(PROMPT, Labels).labels == ["tv"]
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in scripted_server.requests)
    assert "CIELR_TEST_API_KEY" in repr(llm)
    assert SECRET not in repr(llm) and SECRET not in str(llm) and SECRET not in str(vars(llm))
    assert caplog.records, "the backend logs its requests at debug level"
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert SECRET not in caplog.text


def test_api_key_echoed_by_server_is_redacted(scripted_server, monkeypatch):
    monkeypatch.setenv("CIELR_TEST_API_KEY", SECRET)
    scripted_server.error(401, f"invalid key {SECRET}")
    with pytest.raises(LLMError, match="HTTP 401.*CIELR_TEST_API_KEY") as info:
        scripted(scripted_server, api_key_env="CIELR_TEST_API_KEY").complete(PROMPT, Labels)
    assert SECRET not in str(info.value)


def test_unset_api_key_env_is_a_clear_error(scripted_server, monkeypatch):
    monkeypatch.delenv("CIELR_UNSET_KEY", raising=False)
    with pytest.raises(LLMError, match="CIELR_UNSET_KEY.*not set"):
        scripted(scripted_server, api_key_env="CIELR_UNSET_KEY").complete(PROMPT, Labels)
    assert scripted_server.requests == []


def test_key_typed_where_the_variable_name_goes_is_refused():
    with pytest.raises(InputError, match="NAME of an environment variable") as info:
        RemoteLLM("http://127.0.0.1:1/v1", "m", api_key_env=SECRET)
    assert SECRET not in str(info.value)


def test_no_key_no_authorization_header(scripted_server):
    scripted_server.answer({"labels": []})
    scripted(scripted_server).complete(PROMPT, Labels)
    assert "Authorization" not in scripted_server.requests[0].headers


# -- images and settings ------------------------------------------------------------------------

def test_image_is_sent_as_png_data_url(scripted_server):
    from PIL import Image

    scripted_server.answer({"labels": ["tv"]})
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :30] = 255
    scripted(scripted_server, vision=True).complete(PROMPT, Labels, image=image)
    user = scripted_server.requests[0].body["messages"][-1]
    text, picture = user["content"]
    assert text == {"type": "text", "text": PROMPT[-1].content}
    url = picture["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(decoded, image)


def test_image_needs_vision(scripted_server):
    with pytest.raises(LLMError, match="not set up for images"):
        scripted(scripted_server).complete(PROMPT, Labels, image=np.zeros((8, 8, 3), np.uint8))
    assert scripted_server.requests == []


@pytest.mark.parametrize("kwargs", [{"base_url": "127.0.0.1:8080"}, {"timeout": 0}, {"max_retries": 99}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(InputError):
        RemoteLLM(**{"base_url": "http://127.0.0.1:8080/v1", "model": "m", **kwargs})
