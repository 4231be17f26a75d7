"""OpenAI-compatible chat completions over HTTP: llama.cpp server, Ollama /v1, vLLM, LM Studio, OpenAI.

Uses ``requests``: ComfyUI installs it, the pack's other HTTP code and tests use it, and its
(connect, read) timeouts plus a streamed body with a deadline bound every request.

Structured output is asked for as a JSON-schema ``response_format`` (OpenAI, vLLM, Ollama, LM
Studio); a server that rejects it gets JSON mode with the schema attached (llama.cpp's form, which
llama-cpp-python's server needs to constrain decoding; the schema goes into the prompt of a repair
round only), then plain JSON mode, then plain text, the schema in the prompt (last, after the task,
so the requests keep their shared prefix) once the server does not enforce it. The backend remembers what worked.
The API key is read from the environment variable *named* by ``api_key_env`` at each call: it is
never stored on the object, never logged, and never part of an error message.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time

import numpy as np
import requests
from pydantic import BaseModel

from .. import settings as S
from ..errors import InputError
from .base import (
    IMAGE_MAX_SIDE,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    Message,
    T,
    Usage,
    WireMessage,
    check_sampling,
    complete_with_repair,
    fit_image,
    settings_repr,
    to_wire,
    with_schema_hint,
)
from .schema import strict_schema

log = logging.getLogger(__name__)

# Tried in this order; a server that rejects one gets the next.
FORMATS = ("json_schema", "json_object_schema", "json_object", "plain")
# A 4xx naming one of these is a format rejection; a 5xx must name the field itself (llama-cpp-python
# answers HTTP 500 to a response_format it does not know).
_FORMAT_WORDS_4XX = ("response_format", "json_schema", "json_object", "schema", "grammar", "format")
_FORMAT_WORDS_5XX = ("response_format", "json_schema", "json_object")


class _Rejected(Exception):
    """The server answered 4xx: not retried, maybe a format it does not support."""

    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail
        super().__init__(f"HTTP {status}: {detail}")


class RemoteLLM:
    """An OpenAI-compatible chat completions endpoint.

    ``base_url`` is the API root, e.g. ``http://127.0.0.1:8080/v1`` (llama.cpp),
    ``http://127.0.0.1:11434/v1`` (Ollama) or ``https://api.openai.com/v1``. ``timeout`` bounds each
    HTTP request (connect, wait and read); ``max_retries`` bounds the extra tries after a
    connection error, HTTP 429 or 5xx. A timeout is not retried. ``vision`` says the model accepts
    an image.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "", temperature: float = 0.0,
                 seed: int = 0, timeout: float = S.LLM_TIMEOUT.default, max_retries: int = S.LLM_MAX_RETRIES.default,
                 max_tokens: int = S.LLM_MAX_TOKENS.default,
                 vision: bool = False):
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base_url must start with http:// or https://, got {base_url!r}")
        S.LLM_TIMEOUT.check(timeout)
        S.LLM_MAX_RETRIES.check(max_retries)
        check_sampling(temperature, seed, max_tokens)
        if api_key_env and not api_key_env.replace("_", "").isalnum():
            raise InputError("api_key_env is the NAME of an environment variable (like OPENAI_API_KEY), "
                             "not the key itself; got something that is not a variable name")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_tokens = int(max_tokens)
        self.supports_images = bool(vision)
        self.usage = Usage()
        self._format = 0  # index into FORMATS of the best format the server accepted

    def __repr__(self) -> str:
        return settings_repr(self, base_url=self.base_url, model=self.model, api_key_env=self.api_key_env,
                             temperature=self.temperature, seed=self.seed, timeout=self.timeout,
                             max_retries=self.max_retries, vision=self.supports_images)

    @property
    def url(self) -> str:
        if self.base_url.endswith("/chat/completions"):
            return self.base_url
        return f"{self.base_url}/chat/completions"

    @property
    def format(self) -> str:
        """The structured-output format in use, one of FORMATS."""
        return FORMATS[self._format]

    def complete(self, messages: list[Message], schema: type[T], image: np.ndarray | None = None) -> T:
        wire = to_wire(messages)
        if image is not None:
            if not self.supports_images:
                raise LLMError(f"The model {self.model!r} is not set up for images (vision is off); "
                               "turn vision on for a vision model, or leave the image out.")
            wire = _attach_image(wire, image)
        return complete_with_repair(lambda msgs: self._chat(msgs, schema), wire, schema, self.usage)

    # -- one generation, with format fallback ---------------------------------------------------

    def _chat(self, messages: list[WireMessage], schema: type[BaseModel]) -> str:
        while True:
            body = self._body(messages, schema)
            try:
                reply = self._post(body)
            except _Rejected as e:
                if self._format + 1 < len(FORMATS) and _mentions_format(e.status, e.detail):
                    log.info("server %s rejected response_format %s (%s); trying %s",
                             self.base_url, self.format, e.detail[:120], FORMATS[self._format + 1])
                    self._format += 1
                    continue
                raise LLMError(self._rejection_message(e)) from None
            return self._content(reply)

    def _body(self, messages: list[WireMessage], schema: type[BaseModel]) -> dict:
        body: dict = {"model": self.model, "messages": messages, "temperature": self.temperature,
                      "seed": self.seed, "max_tokens": self.max_tokens, "stream": False}
        if self.format == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema.__name__, "schema": strict_schema(schema), "strict": True}}
            return body
        if self.format == "json_object_schema":
            # llama.cpp's form: the server decodes under the schema, so a copy in the prompt would only
            # cost each request a few hundred tokens. A repair round states it, for a server that takes
            # the field but ignores it.
            body["response_format"] = {"type": "json_object", "schema": strict_schema(schema)}
            if any(m["role"] == "assistant" for m in messages):
                body["messages"] = with_schema_hint(messages, schema)
            return body
        # From here on the server does not enforce the schema, so the model has to read it.
        body["messages"] = with_schema_hint(messages, schema)
        if self.format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _content(self, reply: dict) -> str:
        try:
            choice = reply["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"The server at {self.url} did not answer like an OpenAI chat completion "
                           f"(no choices[0].message): {str(reply)[:300]}. Check base_url.") from None
        usage = reply.get("usage") or {}
        self.usage.calls += 1
        self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
        timings = reply.get("timings")  # llama.cpp's server: prompt tokens evaluated after its prefix cache
        if isinstance(timings, dict) and isinstance(timings.get("prompt_n"), int):
            self.usage.evaluated(timings["prompt_n"])
        return content if isinstance(content, str) else str(content)

    # -- HTTP ---------------------------------------------------------------------------------------

    def _post(self, body: dict) -> dict:
        key = self._api_key()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        failure = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(0.25 * 2 ** attempt, 4.0))
            log.debug("POST %s (format %s, attempt %d)", self.url, self.format, attempt + 1)
            try:
                status, text = self._send(body, headers)
            except requests.Timeout:
                raise LLMTimeoutError(
                    f"The LLM server at {self.url} did not answer within {self.timeout:g} s. The model may "
                    "still be loading or be too slow: raise the timeout, use a smaller model, or check "
                    "the server.") from None
            # a server that dies mid-answer breaks the connection or the body: both are retried
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                failure = f"cannot connect ({_reason(e)})"
                continue
            text = _redact(text, key)
            if status == 200:
                return _json_reply(text, self.url)
            if status == 429 or (status >= 500 and not _mentions_format(status, text)):
                failure = f"HTTP {status}: {_detail(text)}"
                continue
            raise _Rejected(status, _detail(text))
        raise LLMConnectionError(
            f"The LLM server at {self.url} failed {self.max_retries + 1} times; last: {failure}. "
            "Check that the server is running and base_url is right (llama.cpp: http://127.0.0.1:8080/v1, "
            "Ollama: http://127.0.0.1:11434/v1).")

    def _send(self, body: dict, headers: dict[str, str]) -> tuple[int, str]:
        """One request; the body is streamed so that a server trickling bytes still hits the deadline."""
        deadline = time.monotonic() + self.timeout
        with requests.post(self.url, json=body, headers=headers, timeout=(self.timeout, self.timeout),
                           stream=True) as response:
            chunks = []
            for chunk in response.iter_content(65536):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise requests.Timeout("deadline passed while reading the answer")
            return response.status_code, b"".join(chunks).decode("utf-8", errors="replace")

    def _api_key(self) -> str:
        if not self.api_key_env:
            return ""
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise LLMError(f"The environment variable {self.api_key_env} (named as the API key) is not set. "
                           "Set it in the environment that starts ComfyUI, or leave api_key_env empty "
                           "for a server without keys.")
        return key

    def _rejection_message(self, e: _Rejected) -> str:
        env = self.api_key_env or "(no variable named)"
        hint = {
            401: f"the API key was refused: check the key in the environment variable {env}",
            403: f"the API key may not use this model: check the key in the environment variable {env}",
            404: f"not found: check base_url (most servers want it to end in /v1) and the model "
                 f"{self.model!r}",
        }.get(e.status, "check the model name and the server's log")
        return f"The LLM server at {self.url} refused the request (HTTP {e.status}: {e.detail}); {hint}."


def _attach_image(messages: list[WireMessage], image: np.ndarray) -> list[WireMessage]:
    """The image goes into the last user message as a PNG data URL (the OpenAI vision format)."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise LLMError("An image needs a user message to go with; add one.")
    parts = [{"type": "text", "text": messages[last_user]["content"]},
             {"type": "image_url", "image_url": {"url": png_data_url(image)}}]
    out = list(messages)
    out[last_user] = {"role": "user", "content": parts}
    return out


def png_data_url(image: np.ndarray, max_side: int = IMAGE_MAX_SIDE) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(fit_image(image, max_side)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _mentions_format(status: int, detail: str) -> bool:
    low = detail.lower()
    return any(word in low for word in (_FORMAT_WORDS_4XX if status < 500 else _FORMAT_WORDS_5XX))


def _json_reply(text: str, url: str) -> dict:
    try:
        reply = json.loads(text)
    except json.JSONDecodeError:
        raise LLMError(f"The server at {url} answered HTTP 200 with something that is not JSON: "
                       f"{text[:200]!r}. Check base_url (it should be the API root, e.g. .../v1).") from None
    if not isinstance(reply, dict):
        raise LLMError(f"The server at {url} answered with {type(reply).__name__}, not a chat completion.")
    return reply


def _detail(text: str) -> str:
    """The error message inside an error body ({"error": {"message": ...}} or {"detail": ...})."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return " ".join(text.split())[:300] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(data)[:300]


def _reason(error: Exception) -> str:
    text = str(error)
    for reason in ("Connection refused", "Name or service not known", "No route to host",
                   "Connection reset", "Remote end closed connection"):
        if reason.lower() in text.lower():
            return reason.lower()
    return type(error).__name__


def _redact(text: str, key: str) -> str:
    # A server that echoes the request must not carry the key into an error message.
    return text.replace(key, "***") if key else text
