"""A local chat model: ``.gguf`` files through llama.cpp, HF folders through transformers.

A ``.gguf`` file runs on llama.cpp (``llamacpp.py``) when llama-cpp-python is installed: quantized
as it is on disk, with the GPU layers offloaded when the device is a GPU. Without it, or for an HF
folder (config.json, weights, tokenizer with a chat template), the model runs on transformers,
which reads a GGUF file by dequantizing it (several times the memory, several times slower).
Decoding is masked by a grammar compiled from the answer schema with no free whitespace, so every
answer parses and stays short even from a weak model. Both keep the KV cache of the previous
prompt and, when decoding greedily, evaluate only what follows the prefix a new prompt shares with
it (sampled answers read the whole prompt, so a seed repeats exactly). Loading is lazy; for
transformers ``.model`` is the torch module, so a ComfyUI adapter can manage its memory, and
``.to(device)`` moves it. Local files only; remote code is never trusted.

Loaded models live in one cache, owned by one layer: a caller that manages memory itself (the
ComfyUI nodes) holds the ``LocalWeights`` (transformers) or ``LlamaModel`` (llama.cpp) in its own
cache and passes them in; used alone, the library keeps the last ``CACHE_SIZE`` of each here. A
weights object is read at most once; a llama.cpp model is opened again only after it was released.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import settings as S
from ..cache import LRU
from ..errors import InputError, ModelNotFoundError
from ..dependencies import require
from ..weights import unsafe_pickle
from . import llamacpp
from .base import LLMError, Message, T, Usage, WireMessage, check_sampling, complete_with_repair, settings_repr, to_wire
from .llamacpp import LlamaModel
from .schema import strict_schema

log = logging.getLogger(__name__)

# End-of-turn markers of common chat templates; any that the vocabulary has also stops decoding.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
_LOCK = threading.Lock()
CACHE_SIZE = 2  # local models the library keeps loaded when no caller brings its own weights
BACKENDS = ("auto", "llama.cpp", "transformers")
GGUF_COST = ("transformers dequantizes a .gguf file: it loads several times slower and needs several "
             "times the memory of llama.cpp (a 4-bit 8B model: 16-32 GB instead of 5 GB)")


@dataclass
class _Loaded:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    compiler: Any  # xgrammar.GrammarCompiler for this tokenizer
    stop_ids: list[int]
    prefix: Any = None  # (prompt ids, KV cache) of the last generation, for the next prompt's prefix


class LocalWeights:
    """The tokenizer, model and grammar compiler of one local file or folder (transformers), read on
    first use and kept for as long as this object lives. ``.model`` and ``.to(device)`` let a memory
    manager (ComfyUI) move the model between devices."""

    def __init__(self, path: str | Path, dtype: str = "float32"):
        self.path = str(Path(path).resolve())
        self.dtype = dtype
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalWeights({self.path!r}, dtype={self.dtype!r}, loaded={self._loaded is not None})"

    def get(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = _read(self.path, self.dtype)
            return self._loaded

    @property
    def model(self):
        return self.get().model

    def to(self, device: str) -> LocalWeights:
        self.model.to(device)
        return self


_SHARED: LRU[LocalWeights] = LRU(CACHE_SIZE)
_SHARED_LLAMA: LRU[LlamaModel] = LRU(CACHE_SIZE, drop=LlamaModel.release)  # close a dropped one now


def shared_weights(path: str | Path, dtype: str) -> LocalWeights:
    """The library's own cache, for callers that bring no weights: the last CACHE_SIZE files."""
    key = (str(Path(path).resolve()), dtype)
    return _SHARED.get(key, lambda: LocalWeights(*key))


def shared_llama(path: str | Path, gpu_layers: int, n_ctx: int) -> LlamaModel:
    """The library's own llama.cpp models, for callers that bring none: the last CACHE_SIZE."""
    key = (str(Path(path).resolve()), gpu_layers, n_ctx)
    return _SHARED_LLAMA.get(key, lambda: LlamaModel(*key))


def pick_backend(path: Path, backend: str = "auto") -> str:
    """'llama.cpp' for a .gguf file when llama-cpp-python is installed, else 'transformers'."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    is_gguf = path.suffix == ".gguf" and path.is_file()
    if backend == "llama.cpp":
        if not is_gguf:
            raise InputError(f"llama.cpp runs .gguf files; {path.name} is not one: use the transformers backend")
        if not llamacpp.available():
            raise LLMError(f"llama-cpp-python is not installed: {llamacpp.INSTALL_HINT}.")
        return backend
    if backend == "auto":
        return "llama.cpp" if is_gguf and llamacpp.available() else "transformers"
    return backend


class LocalLLM:
    """A chat model on this machine (llama.cpp for .gguf files when installed, else transformers).

    ``temperature`` 0 decodes greedily; above 0 it samples, repeatably for one ``seed``.
    ``max_new_tokens`` bounds each answer. ``dtype`` (transformers) defaults to float32 on the CPU
    and bfloat16 on a GPU. ``backend`` is "auto", "llama.cpp" or "transformers". With llama.cpp a
    device other than "cpu" offloads every layer to the GPU. ``weights`` (transformers: ``LocalWeights``,
    llama.cpp: a ``LlamaModel`` of ``llama_key``): this file's model from the caller's own cache;
    without them the library's cache is used.
    """

    supports_images = False

    def __init__(self, path: str | Path, device: str = "cpu", temperature: float = 0.0, seed: int = 0,
                 max_new_tokens: int = S.LLM_MAX_TOKENS.default, dtype: str | None = None, backend: str = "auto",
                 weights: LocalWeights | LlamaModel | None = None):
        self.path = Path(path)
        is_gguf = self.path.is_file() and self.path.suffix == ".gguf"
        if not is_gguf and not (self.path / "config.json").is_file():
            raise ModelNotFoundError("Local LLM", ["a folder with config.json", "a .gguf file"], [self.path],
                                     "Hugging Face (an instruct model's folder or GGUF file) into models/LLM")
        check_sampling(temperature, seed, max_new_tokens)
        self.device = str(device)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.max_new_tokens = int(max_new_tokens)
        self.dtype = dtype or ("float32" if self.device == "cpu" else "bfloat16")
        self.backend = pick_backend(self.path, backend)
        if is_gguf and self.backend == "transformers" and backend == "auto":
            log.warning("%s runs on transformers because llama-cpp-python is not installed: %s. To fix it, %s.",
                        self.path.name, GGUF_COST, llamacpp.INSTALL_HINT)
        self.weights = weights
        if weights is not None and not self._fits(weights):
            raise InputError(f"the weights given are {weights!r}, not those of {self!r}")
        self.usage = Usage()

    def __repr__(self) -> str:
        return settings_repr(self, path=str(self.path), device=self.device, temperature=self.temperature,
                             seed=self.seed, max_new_tokens=self.max_new_tokens, dtype=self.dtype,
                             backend=self.backend)

    @property
    def llama_key(self) -> tuple:
        """(file, GPU layers, context size): what the llama.cpp model is loaded and shared by."""
        gpu_layers = 0 if self.device == "cpu" else -1
        return (str(self.path.resolve()), gpu_layers, llamacpp.context_size(self.max_new_tokens))

    def load(self) -> LocalLLM:
        """Load the weights now (else the first answer does)."""
        if self.backend == "llama.cpp":
            self.llama.load()
        else:
            self._loaded()
        return self

    @property
    def model(self):
        """The torch module of a transformers model (loaded on first use, then shared by every
        LocalLLM of the same file)."""
        if self.backend != "transformers":
            raise LLMError(f"{self.path.name} runs on llama.cpp: it has no torch module.")
        return self._loaded().model

    @property
    def tokenizer(self):
        return self._loaded().tokenizer

    @property
    def llama(self) -> LlamaModel:
        """The llama.cpp model: the caller's, else the library's (shared by every LocalLLM of the same
        file, GPU layers and context size)."""
        if self.backend != "llama.cpp":
            raise LLMError(f"{self.path.name} runs on transformers: it has no llama.cpp model.")
        return self.weights if isinstance(self.weights, LlamaModel) else shared_llama(*self.llama_key)

    def to(self, device: str) -> LocalLLM:
        device = str(device)
        if isinstance(self.weights, LlamaModel) and (device == "cpu") != (self.device == "cpu"):
            raise LLMError(f"{self.path.name} was opened by llama.cpp for {self.device}, where it stays: load "
                           f"it again for {device}.")
        self.device = device
        if self.backend == "transformers":
            self.model.to(self.device)
        return self

    def complete(self, messages: list[Message], schema: type[T], image: np.ndarray | None = None) -> T:
        if image is not None:
            raise LLMError(f"The local model {self.path.name} reads text only; leave the image out.")
        wire = to_wire(messages)
        if self.backend == "llama.cpp":
            self.llama.load()  # a file that is not a chat model fails before the grammar
            grammar = _llama_grammar(schema)
            generate = functools.partial(self._generate_llamacpp, grammar=grammar)
        else:
            generate = functools.partial(self._generate, grammar=self._grammar(schema))
        return complete_with_repair(generate, wire, schema, self.usage)

    def _generate_llamacpp(self, messages: list[WireMessage], grammar) -> str:
        text, prompt, completion, evaluated = self.llama.generate(
            messages, grammar, temperature=self.temperature, seed=self.seed, max_tokens=self.max_new_tokens)
        self.usage.calls += 1
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += completion
        self.usage.evaluated(evaluated)
        return text

    # -- internals ------------------------------------------------------------------------------

    def _fits(self, weights: LocalWeights | LlamaModel) -> bool:
        if self.backend == "llama.cpp":
            return isinstance(weights, LlamaModel) and weights.key == self.llama_key
        return isinstance(weights, LocalWeights) and (weights.path, weights.dtype) == (str(self.path.resolve()),
                                                                                       self.dtype)

    def _loaded(self) -> _Loaded:
        import torch

        weights = self.weights if isinstance(self.weights, LocalWeights) else shared_weights(self.path, self.dtype)
        loaded = weights.get()
        want = torch.device(self.device)
        have = loaded.model.device
        if have.type != want.type or (want.index is not None and have.index != want.index):
            loaded.model.to(want)  # e.g. back from the CPU after ComfyUI offloaded it
        return loaded

    def _grammar(self, schema: type[T]):
        # No free whitespace and fixed separators: the model cannot pad its answer with blanks.
        return self._loaded().compiler.compile_json_schema(
            strict_schema(schema), any_whitespace=False, separators=(",", ":"), strict_mode=True)

    def _generate(self, messages: list[WireMessage], grammar) -> str:
        import torch
        import transformers
        from xgrammar.contrib.hf import LogitsProcessor

        loaded = self._loaded()
        tok, model = loaded.tokenizer, loaded.model
        inputs = tok(_render(tok, messages), return_tensors="pt", add_special_tokens=False).to(model.device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else loaded.stop_ids[0]
        sample = self.temperature > 0
        config = transformers.GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=sample,
            temperature=self.temperature if sample else None, top_k=None, top_p=None,
            eos_token_id=loaded.stop_ids, pad_token_id=pad)
        constrain = transformers.LogitsProcessorList([LogitsProcessor(grammar)])
        devices = [model.device.index or 0] if model.device.type == "cuda" else []
        ids = inputs["input_ids"]
        with _LOCK, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(self.seed)  # inside fork_rng: the caller's random state is untouched
            cache, reused = _reusable_prefix(loaded, ids) if not sample else (None, 0)
            out = model.generate(**inputs, generation_config=config, logits_processor=constrain,
                                 past_key_values=cache, return_dict_in_generate=True)
            loaded.prefix = (out.sequences[0].detach(), out.past_key_values)
        new = out.sequences[0, ids.shape[1]:]
        self.usage.calls += 1
        self.usage.prompt_tokens += int(ids.shape[1])
        self.usage.completion_tokens += int(new.shape[0])
        self.usage.evaluated(int(ids.shape[1]) - reused)
        return tok.decode(new, skip_special_tokens=True)


def _reusable_prefix(loaded: _Loaded, ids) -> tuple[Any, int]:
    """The last generation's KV cache cut to the prefix it shares with ``ids`` (at least one token is
    left to evaluate), or (None, 0) when nothing can be reused."""
    if loaded.prefix is None:
        return None, 0
    previous, cache = loaded.prefix
    loaded.prefix = None  # generate() extends the cache in place: it is only good for this prompt
    prompt = ids[0]
    if previous.device != prompt.device or not hasattr(cache, "crop"):
        return None, 0  # ComfyUI moved the model since
    n = min(int(previous.shape[0]), int(prompt.shape[0]) - 1, int(cache.get_seq_length()))
    differs = (previous[:n] != prompt[:n]).nonzero()
    shared = int(differs[0, 0]) if differs.numel() else max(n, 0)
    if shared <= 0:
        return None, 0
    surplus = int(cache.get_seq_length()) - shared
    try:
        if surplus > 0:
            cache.crop(-surplus)  # a negative count means "remove that many" in transformers 4.x and 5.x
    except (ValueError, RuntimeError, NotImplementedError):  # e.g. sliding-window layers past their window
        return None, 0
    if int(cache.get_seq_length()) != shared:
        return None, 0
    return cache, shared


def _render(tokenizer, messages: list[WireMessage]) -> str:
    """The chat template's prompt; templates without a system role get it folded into the first turn."""
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
            raise
        folded = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
        return tokenizer.apply_chat_template([folded, *messages[2:]], tokenize=False,
                                             add_generation_prompt=True)


def _read(path: str, dtype: str) -> _Loaded:
    """Tokenizer, model (on the CPU, eval mode) and grammar compiler of one local file or folder."""
    import torch

    transformers = require("transformers", "transformers", "local LLMs")
    xgr = require("xgrammar", "xgrammar", "constrained decoding with local LLMs")
    p = Path(path)
    folder, extra = (str(p.parent), {"gguf_file": p.name}) if p.suffix == ".gguf" else (str(p), {})
    if extra:  # transformers reads GGUF with both
        require("gguf", "gguf", "reading .gguf models with transformers")
        require("accelerate", "accelerate", "reading .gguf models with transformers")
    common = {"local_files_only": True, "trust_remote_code": False, **extra}
    log.info("loading local LLM %s", path)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **common)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, dtype), **common)
    except pickle.UnpicklingError as e:  # transformers reads .bin weights with weights_only=True
        raise LLMError(f"Cannot load the local LLM {path}: its weights were {unsafe_pickle(e)}. Use a "
                       "model with .safetensors weights or a .gguf file.") from None
    except (OSError, ValueError, KeyError) as e:
        raise LLMError(f"Cannot load the local LLM {path}: {str(e).rstrip('.')}. Use a causal chat model "
                       "as a Hugging Face folder or a .gguf file whose architecture transformers "
                       "supports.") from e
    if not tokenizer.chat_template:
        raise LLMError(f"The local LLM {path} has no chat template; use an instruct (chat) model.")
    model.eval()
    stop_ids = _stop_ids(tokenizer, model)
    vocab_size = model.get_output_embeddings().weight.shape[0]  # the logits' width, padding included
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
    return _Loaded(model, tokenizer, xgr.GrammarCompiler(info, max_threads=1), stop_ids)


def _stop_ids(tokenizer, model) -> list[int]:
    ids: list[int] = []
    for source in (tokenizer.eos_token_id, model.generation_config.eos_token_id):
        ids += source if isinstance(source, list) else [source] if source is not None else []
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in _END_OF_TURN if t in vocab]
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise LLMError("The local LLM's tokenizer names no end-of-sequence token, so an answer "
                       "could not end; use an instruct (chat) model.")
    return ids


def _llama_grammar(schema: type[T]):
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(llamacpp.gbnf(schema), verbose=False)


def clear_cache() -> None:
    """Forget the library's loaded local models (their memory is freed once no LocalLLM uses them)."""
    _SHARED.clear()
    _SHARED_LLAMA.clear()
