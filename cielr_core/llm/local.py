"""A local chat model through transformers, with JSON-schema constrained decoding (xgrammar).

The model is an HF folder (config.json, weights, tokenizer with a chat template) or a ``.gguf``
file, whose tokenizer and chat template come from the same file. Decoding is masked by a grammar
compiled from the answer schema with no free whitespace, so every answer parses and stays short
even from a weak model. Loading is lazy and cached per (file, dtype); ``.model`` is the torch
module, so a ComfyUI adapter can manage its memory, and ``.to(device)`` moves it.
Local files only; remote code is never trusted.
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

from ..errors import InputError, ModelNotFoundError, require
from ..weights import unsafe_pickle
from .base import LLMError, Message, T, Usage, WireMessage, complete_with_repair, to_wire
from .schema import strict_schema

log = logging.getLogger(__name__)

# End-of-turn markers of common chat templates; any that the vocabulary has also stops decoding.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
_LOCK = threading.Lock()


@dataclass
class _Loaded:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    compiler: Any  # xgrammar.GrammarCompiler for this tokenizer
    stop_ids: list[int]


class LocalLLM:
    """A transformers chat model on this machine.

    ``temperature`` 0 decodes greedily; above 0 it samples, repeatably for one ``seed``.
    ``max_new_tokens`` bounds each answer. ``dtype`` defaults to float32 on the CPU and bfloat16
    on a GPU.
    """

    supports_images = False

    def __init__(self, path: str | Path, device: str = "cpu", temperature: float = 0.0, seed: int = 0,
                 max_new_tokens: int = 512, dtype: str | None = None):
        self.path = Path(path)
        is_gguf = self.path.is_file() and self.path.suffix == ".gguf"
        if not is_gguf and not (self.path / "config.json").is_file():
            raise ModelNotFoundError("Local LLM", ["a folder with config.json", "a .gguf file"], [self.path],
                                     "Hugging Face (an instruct model's folder or GGUF file) into models/LLM")
        if not 1 <= max_new_tokens <= 32768:
            raise InputError(f"max_new_tokens must be between 1 and 32768, got {max_new_tokens}")
        if temperature < 0:
            raise InputError(f"temperature must be 0 (greedy) or more, got {temperature}")
        self.device = str(device)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.max_new_tokens = int(max_new_tokens)
        self.dtype = dtype or ("float32" if self.device == "cpu" else "bfloat16")
        self.usage = Usage()

    def __repr__(self) -> str:
        return (f"LocalLLM(path={str(self.path)!r}, device={self.device!r}, temperature={self.temperature}, "
                f"seed={self.seed}, max_new_tokens={self.max_new_tokens}, dtype={self.dtype!r})")

    @property
    def model(self):
        """The torch module (loaded on first use, then shared by every LocalLLM of the same file)."""
        return self._loaded().model

    @property
    def tokenizer(self):
        return self._loaded().tokenizer

    def to(self, device: str) -> "LocalLLM":
        self.device = str(device)
        self.model.to(self.device)
        return self

    def complete(self, messages: list[Message], schema: type[T], image: np.ndarray | None = None) -> T:
        if image is not None:
            raise LLMError(f"The local model {self.path.name} reads text only; leave the image out.")
        wire = to_wire(messages)
        grammar = self._grammar(schema)
        return complete_with_repair(lambda msgs: self._generate(msgs, grammar), wire, schema, self.usage)

    # -- internals ------------------------------------------------------------------------------

    def _loaded(self) -> _Loaded:
        import torch

        loaded = _load(str(self.path.resolve()), self.dtype)
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
        with _LOCK, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(self.seed)  # inside fork_rng: the caller's random state is untouched
            out = model.generate(**inputs, generation_config=config, logits_processor=constrain)
        new = out[0, inputs["input_ids"].shape[1]:]
        self.usage.calls += 1
        self.usage.prompt_tokens += int(inputs["input_ids"].shape[1])
        self.usage.completion_tokens += int(new.shape[0])
        return tok.decode(new, skip_special_tokens=True)


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


@functools.lru_cache(maxsize=2)
def _load(path: str, dtype: str) -> _Loaded:
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


def clear_cache() -> None:
    """Forget loaded local models (their memory is freed once no LocalLLM uses them)."""
    _load.cache_clear()
