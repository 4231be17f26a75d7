"""LLM backend nodes: an OpenAI-compatible server, or a local model under ComfyUI's memory management.

The API key of a remote server never passes through a widget: the node takes the NAME of an
environment variable, and the backend reads the value at each request, so it never lands in a
saved workflow, the prompt history or PNG metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cielr_core.cache import LRU

from .base import CIELRNode
from .loaders import require_model
from .memory import DEVICE_TIP, DEVICES, Managed, cached, devices, fingerprint, manage, manage_llama
from .model_folders import model_choices, resolve

log = logging.getLogger(__name__)

LOCAL_SUGGESTIONS = ["Qwen2.5-1.5B-Instruct", "qwen2.5-1.5b-instruct-q4_k_m.gguf"]
LOCAL_SOURCE = ("Hugging Face: an instruct model's folder (config.json, tokenizer, safetensors), e.g. "
                "Qwen/Qwen2.5-1.5B-Instruct, or one .gguf file, e.g. from Qwen/Qwen2.5-1.5B-Instruct-GGUF; "
                "put it into models/LLM")
SEED_MAX = 2**31 - 1
GGUF_TIP = ("An instruct (chat) model in models/LLM: a .gguf file (runs quantized on llama.cpp, the fastest "
            "and smallest way) or a Hugging Face folder with config.json and a chat template. 1.5B parameters "
            "and up reason usefully.")

_REMOTE = LRU(8)

TEMPERATURE_TIP = ("0 = always the most likely answer (repeatable, best for plans). Higher values vary the "
                   "answers.")
SEED_TIP = "Seed for sampling; with the same seed and settings a run is repeatable."
TEMPERATURE = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": TEMPERATURE_TIP})
# Fixed, with no "control after generate": a seed that re-rolled on every Queue would change the LLM's
# input and make ComfyUI run the whole chain after it again.
SEED = ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": False, "tooltip": SEED_TIP})


class ManagedLLM:
    """A local LLM whose weights ComfyUI may move off the GPU between calls; each call brings them back.

    Satisfies the ``cielr_core.llm.LLM`` protocol, so the reasoning nodes take it like any backend.
    """

    supports_images = False

    def __init__(self, managed: Managed, llm: Any):
        self.managed = managed  # the shared weights + ModelPatcher (one per file and device)
        self.llm = llm  # a LocalLLM with this node's temperature, seed and token limit

    @property
    def usage(self):
        return self.llm.usage

    def __repr__(self) -> str:
        return f"ManagedLLM({self.llm!r})"

    def complete(self, messages, schema, image=None):
        self.managed.ready()  # back onto the load device if ComfyUI offloaded it
        return self.llm.complete(messages, schema, image=image)


def _model_tip() -> str:
    from cielr_core.llm import llamacpp
    from cielr_core.llm.local import GGUF_COST

    if llamacpp.available():
        return GGUF_TIP
    return (f"{GGUF_TIP} llama-cpp-python is not installed here, so a .gguf file runs on transformers: "
            f"{GGUF_COST}. To fix it, {llamacpp.INSTALL_HINT}.")


class CIELRLLMRemote(CIELRNode):
    """An LLM on an OpenAI-compatible server: llama.cpp server, Ollama (/v1), vLLM, LM Studio or OpenAI.
    Answers are asked for as JSON that follows a schema; the API key is read from an environment variable,
    never typed into the workflow."""

    FUNCTION = "connect"
    OUTPUTS = (("CIELR_LLM", "llm"),)

    INPUTS = {"required": {
        "base_url": ("STRING", {
            "default": "http://127.0.0.1:8080/v1",
            "tooltip": "The API root, usually ending in /v1. llama.cpp: http://127.0.0.1:8080/v1, "
                       "Ollama: http://127.0.0.1:11434/v1, OpenAI: https://api.openai.com/v1."}),
        "model": ("STRING", {
            "default": "local-model",
            "tooltip": "The model name the server knows, e.g. qwen2.5:7b (Ollama) or gpt-4o-mini "
                       "(OpenAI). A llama.cpp server with one model accepts any name."}),
        "api_key_env": ("STRING", {
            "default": "",
            "tooltip": "The NAME of the environment variable that holds the API key (e.g. "
                       "OPENAI_API_KEY), set where ComfyUI starts. Never the key itself: the workflow is "
                       "saved with this name only. Empty for servers without keys."}),
        "temperature": TEMPERATURE,
        "seed": SEED,
        "timeout": ("FLOAT", {
            "default": 120.0, "min": 1.0, "max": 3600.0, "step": 1.0,
            "tooltip": "Seconds to wait for one answer before giving up with an error. A few retries "
                       "follow connection errors and busy servers, never a timeout."}),
        "vision": ("BOOLEAN", {
            "default": False,
            "tooltip": "Turn on for a model that reads images (e.g. gpt-4o, llava, qwen2.5-vl): Propose "
                       "Labels then sends it the photo too."}),
    }}

    def connect(self, base_url: str, model: str, api_key_env: str, temperature: float, seed: int,
                timeout: float, vision: bool = False):
        from cielr_core.llm import RemoteLLM

        settings = (base_url.strip(), model.strip(), api_key_env.strip(), float(temperature), int(seed),
                    float(timeout), bool(vision))
        url, name, env, temp, sd, limit, see = settings
        # one backend per settings: it remembers the answer format the server takes
        return (_REMOTE.get(settings, lambda: RemoteLLM(url, name, api_key_env=env, temperature=temp, seed=sd,
                                                        timeout=limit, vision=see)),)


class CIELRLLMLocal(CIELRNode):
    """An LLM on this machine: a .gguf file in models/LLM runs on llama.cpp (when llama-cpp-python is
    installed), a Hugging Face folder on transformers. Answers are decoded under the answer's JSON schema, so
    they always parse. It gives way (freed or moved off the GPU) when ComfyUI needs the room for the diffusion
    model."""

    FUNCTION = "load"
    OUTPUTS = (("CIELR_LLM", "llm"),)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (model_choices("LLM", (".gguf",), LOCAL_SUGGESTIONS, dirs=True), {
                "tooltip": _model_tip()}),
            "device": (DEVICES, {"tooltip": DEVICE_TIP}),
            "temperature": TEMPERATURE,
            "seed": SEED,
            "max_tokens": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 16,
                                   "tooltip": "The longest answer, in tokens. Plans need about 100."}),
        }}

    @classmethod
    def IS_CHANGED(cls, model, device, temperature, seed, max_tokens):
        path = resolve("LLM", model)
        return str(fingerprint(path) if path else None)

    def load(self, model: str, device: str, temperature: float, seed: int, max_tokens: int):
        from cielr_core.llm import LocalLLM
        from cielr_core.llm.llamacpp import INSTALL_HINT, LlamaModel
        from cielr_core.llm.local import GGUF_COST, LocalWeights, pick_backend

        path = require_model("LLM", model, "Local LLM", tuple(LOCAL_SUGGESTIONS), LOCAL_SOURCE)
        load_device, _ = devices(device)
        dtype = "float32" if load_device.type == "cpu" else "bfloat16"  # one dtype: the weights load once
        backend = pick_backend(Path(path))
        options = {"device": str(load_device), "temperature": float(temperature), "seed": int(seed),
                   "max_new_tokens": int(max_tokens), "dtype": dtype, "backend": backend}
        # the model lives in this cache only, under ComfyUI's management; the library keeps no copy
        if backend == "llama.cpp":
            key = LocalLLM(path, **options).llama_key
            managed = cached(("llm", fingerprint(path), device, key),
                             lambda: manage_llama(LlamaModel(*key), device))
        else:
            if path.endswith(".gguf"):
                log.warning("CIELR LLM (local): %s. To fix it, %s.", GGUF_COST, INSTALL_HINT)
            managed = cached(("llm", fingerprint(path), device),
                             lambda: manage(LocalWeights(path, dtype), device))
        llm = LocalLLM(path, weights=managed.core, **options)
        return (ManagedLLM(managed, llm),)


NODE_CLASS_MAPPINGS = {"CIELRLLMRemote": CIELRLLMRemote, "CIELRLLMLocal": CIELRLLMLocal}
NODE_DISPLAY_NAME_MAPPINGS = {"CIELRLLMRemote": "CIELR LLM (OpenAI-compatible server)",
                              "CIELRLLMLocal": "CIELR LLM (local)"}
