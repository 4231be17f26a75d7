"""LLM backend nodes: an OpenAI-compatible server, or a local model under ComfyUI's memory management.

The API key of a remote server never passes through a widget: the node takes the NAME of an
environment variable, and the backend reads the value at each request, so it never lands in a
saved workflow, the prompt history or PNG metadata. The seeds stay as set (no control after
generate), so queueing again reuses the LLM's answers from ComfyUI's cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from comfy_api.latest import io

from cielr_core import settings as S
from cielr_core.cache import LRU

from .base import LLM, REASONING, CIELRNode, choice, out, widget
from .loaders import file_fingerprint, require_model
from .memory import OnDevice, cached, devices, fingerprint, manage, manage_llama
from .model_folders import model_choices

log = logging.getLogger(__name__)

LOCAL_SUGGESTIONS = ["Qwen2.5-1.5B-Instruct", "qwen2.5-1.5b-instruct-q4_k_m.gguf"]
LOCAL_SOURCE = ("Hugging Face: an instruct model's folder (config.json, tokenizer, safetensors), e.g. "
                "Qwen/Qwen2.5-1.5B-Instruct, or one .gguf file, e.g. from Qwen/Qwen2.5-1.5B-Instruct-GGUF; "
                "put it into models/LLM")
GGUF_TIP = ("An instruct (chat) model in models/LLM: a .gguf file (runs quantized on llama.cpp, the fastest "
            "and smallest way) or a Hugging Face folder with config.json and a chat template. 1.5B parameters "
            "and up reason usefully.")
LLM_OUT = out(LLM, "llm", "The LLM, for Propose Labels, Refine Scene and Decompose (and, with vision, the judge of "
                          "Inpaint Actions and Verify Edit).")

_REMOTE = LRU(8)


def _model_tip() -> str:
    from cielr_core.llm import llamacpp
    from cielr_core.llm.local import GGUF_COST

    if llamacpp.available():
        return GGUF_TIP
    return (f"{GGUF_TIP} llama-cpp-python is not installed here, so a .gguf file runs on transformers: "
            f"{GGUF_COST}. To fix it, {llamacpp.INSTALL_HINT}.")


class CIELRLLMRemote(CIELRNode, title="CIELR LLM (OpenAI-compatible server)", stage=REASONING,
                     aliases=("openai", "ollama", "llama.cpp server", "vllm", "lm studio", "chat completions")):
    """An LLM on an OpenAI-compatible server: llama.cpp server, Ollama (/v1), vLLM, LM Studio or OpenAI.
    Answers are asked for as JSON that follows a schema; the API key is read from an environment variable,
    never typed into the workflow."""

    OUTPUTS = (LLM_OUT,)

    INPUTS = (widget(S.SERVER_URL), widget(S.LLM_MODEL), widget(S.API_KEY_ENV), widget(S.TEMPERATURE),
              widget(S.LLM_SEED), widget(S.LLM_TIMEOUT), widget(S.LLM_VISION))

    @classmethod
    def execute(cls, base_url: str, model: str, api_key_env: str, temperature: float, seed: int,
                timeout: float, vision: bool = False) -> io.NodeOutput:
        from cielr_core.llm import RemoteLLM

        settings = (base_url.strip(), model.strip(), api_key_env.strip(), float(temperature), int(seed),
                    float(timeout), bool(vision))
        url, name, env, temp, sd, limit, see = settings
        # one backend per settings: it remembers the answer format the server takes
        return io.NodeOutput(_REMOTE.get(settings, lambda: RemoteLLM(
            url, name, api_key_env=env, temperature=temp, seed=sd, timeout=limit, vision=see)))


class CIELRLLMLocal(CIELRNode, title="CIELR LLM (local)", stage=REASONING,
                    aliases=("gguf", "llama.cpp", "local llm", "qwen", "transformers llm", "offline llm")):
    """An LLM on this machine: a .gguf file in models/LLM runs on llama.cpp (when llama-cpp-python is
    installed), a Hugging Face folder on transformers. Answers are decoded under the answer's JSON schema, so
    they always parse. It gives way (freed or moved off the GPU) when ComfyUI needs the room for the diffusion
    model."""

    OUTPUTS = (LLM_OUT,)

    @classmethod
    def inputs(cls):
        return [choice("model", model_choices("LLM", (".gguf",), LOCAL_SUGGESTIONS, dirs=True), _model_tip()),
                widget(S.NODE_DEVICE), widget(S.TEMPERATURE), widget(S.LLM_SEED), widget(S.LLM_MAX_TOKENS)]

    @classmethod
    def fingerprint_inputs(cls, model, device, temperature, seed, max_tokens):
        return str(file_fingerprint("LLM", model))

    @classmethod
    def execute(cls, model: str, device: str, temperature: float, seed: int, max_tokens: int) -> io.NodeOutput:
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
        return io.NodeOutput(OnDevice(managed, LocalLLM(path, weights=managed.core, **options)))


NODES = (CIELRLLMRemote, CIELRLLMLocal)
