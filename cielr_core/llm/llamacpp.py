"""A local ``.gguf`` chat model through llama.cpp (llama-cpp-python), quantized as it is on disk.

transformers dequantizes a GGUF file into full-size tensors (a 4-bit 8B model becomes 16-32 GB);
llama.cpp runs the quantized weights, several times faster on a CPU and with a fraction of the
memory. llama-cpp-python is optional (a source build on many platforms): ``available()`` says
whether it is installed, and ``LocalLLM`` falls back to transformers without it.

Answers are constrained by a GBNF grammar that llama.cpp builds from the answer's JSON schema,
with its optional whitespace removed, so a weak model can neither break the JSON nor pad it.
The loaded model keeps its KV cache between calls: llama.cpp evaluates only the part of a prompt
after the longest prefix it shares with the previous one, so the requests of one edit, which share
the rules, the instruction and the scene, are mostly read once. A prompt read partly from the cache
can differ from one read whole in the last bits of its logits, which a sampled answer (temperature
above 0) may turn into other words; so sampled answers read the whole prompt and stay repeatable
for a seed, and greedy ones (temperature 0, the default for plans) reuse the prefix.

The file is checked before llama.cpp sees it: a file that is not GGUF, or whose header counts
are absurd, is refused with a clear error instead of reaching native code.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import re
import struct
import threading
import weakref
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .base import LLMError, WireMessage
from .schema import strict_schema

log = logging.getLogger(__name__)

INSTALL_HINT = ("install llama-cpp-python for quantized GGUF models: on the CPU "
                "`pip install llama-cpp-python`, with CUDA "
                "`CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install llama-cpp-python` (see the README)")
PROMPT_BUDGET = 4096  # tokens: the longest prompt an edit sends (rules, instruction, scene, one repair)
MAX_CTX = 16384
_MAGIC = b"GGUF"
_MAX_TENSORS = 1 << 20  # far above any real model (an 8B model has ~300 tensors)
_MAX_KV = 1 << 16  # metadata entries (real files hold ~40, plus token lists counted as one each)
_SPACE_RULE = re.compile(r"^space ::= .*$", re.MULTILINE)


def available() -> bool:
    """Whether llama-cpp-python is installed (without importing it, which loads a native library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def check_gguf(path: Path) -> None:
    """Refuse a file that is not a GGUF model, or whose header cannot be a real one, before any
    native code reads it."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
        size = path.stat().st_size
    except OSError as e:
        raise LLMError(f"Cannot read the local LLM {path}: {e}.") from None
    if head[:4] != _MAGIC:
        raise LLMError(f"The local LLM {path.name} is not a GGUF file (it does not start with 'GGUF'). "
                       "Use a .gguf model file (e.g. from a '-GGUF' repository on Hugging Face) or a "
                       "Hugging Face model folder.")
    if len(head) < 24:
        raise LLMError(f"The GGUF file {path.name} is cut off ({size} bytes, not even a header). "
                       "Download it again.")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in (2, 3):
        raise LLMError(f"The GGUF file {path.name} has format version {version}; llama.cpp reads versions "
                       "2 and 3. Download a current GGUF file of the model.")
    if not 0 < n_tensors <= _MAX_TENSORS or n_kv > _MAX_KV or n_tensors * 32 > size:
        raise LLMError(f"The GGUF file {path.name} has a malformed header ({n_tensors} tensors, {n_kv} "
                       f"metadata entries in {size} bytes): it is damaged or not a model. Download it "
                       "again.")


def gbnf(schema: type[BaseModel]) -> str:
    """The answer schema as a llama.cpp grammar that allows no whitespace between JSON tokens."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = json_schema_to_gbnf(json.dumps(strict_schema(schema)))
    return _SPACE_RULE.sub('space ::= ""', grammar)


def default_threads() -> int:
    """The CPU threads for decoding: every core on small machines, half (the physical cores) on big."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return n if n <= 4 else n // 2


class LlamaModel:
    """One GGUF file opened with llama.cpp for (GPU layers, context size): opened on first use, closed
    by ``release()`` when a memory manager needs the room, and opened again by the next use. The
    llama.cpp context, and so its KV cache, lives as long as the model stays open. Whoever holds this
    object owns the memory: the ComfyUI nodes in their cache, else the library's own (``local.py``)."""

    def __init__(self, path: str | Path, gpu_layers: int, n_ctx: int):
        self.key = (str(Path(path).resolve()), int(gpu_layers), int(n_ctx))
        self._llama: Any = None  # llama_cpp.Llama while open
        self._stamp: tuple = ()  # the file's (mtime, size) when opened: a replaced file is opened again
        self._lock = threading.Lock()  # never closed under a running generation
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"LlamaModel({self.path!r}, gpu_layers={self.key[1]}, n_ctx={self.n_ctx}, loaded={self.is_loaded})"

    @property
    def path(self) -> str:
        return self.key[0]

    @property
    def n_ctx(self) -> int:
        return self.key[2]

    @property
    def is_loaded(self) -> bool:
        return self._llama is not None

    @property
    def llama(self) -> Any:
        """The open llama_cpp.Llama (opened now if it is not)."""
        with self._lock:
            return self._opened()

    def load(self) -> LlamaModel:
        with self._lock:
            self._opened()
        return self

    def to(self, device: str) -> LlamaModel:
        return self  # its GPU layers are fixed when it opens; nothing to move

    def release(self) -> bool:
        """Free the model's memory now (ComfyUI needs the room); its next use opens it again."""
        with self._lock:
            return self._close()

    def generate(self, messages: list[WireMessage], grammar: Any, *, temperature: float, seed: int,
                 max_tokens: int) -> tuple[str, int, int, int | None]:
        """One constrained answer: (text, prompt tokens, completion tokens, prompt tokens llama.cpp
        evaluated, None if it cannot tell)."""
        with self._lock:
            return _generate(self._opened(), self.n_ctx, messages, grammar, temperature, seed, max_tokens)

    def _opened(self) -> Any:
        stamp = _stamp(self.path)
        if self._llama is not None and self._stamp != stamp:
            self._close()
        if self._llama is None:
            self._llama = _open(*self.key)
            self._stamp = stamp
        return self._llama

    def _close(self) -> bool:
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()
        return llama is not None


def _stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_mtime_ns, st.st_size)


_LIVE: weakref.WeakSet[LlamaModel] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """llama-cpp-python's own finalizer fails once the interpreter is going down: close models first."""
    for model in list(_LIVE):
        model.release()


def _open(path: str, gpu_layers: int, n_ctx: int) -> Any:
    p = Path(path)
    check_gguf(p)
    import llama_cpp

    threads = default_threads()
    if gpu_layers and not llama_cpp.llama_supports_gpu_offload():
        log.warning("this llama-cpp-python was built for the CPU only, so %s runs on the CPU; for the GPU, "
                    "%s", p.name, INSTALL_HINT)
    log.info("loading local LLM %s with llama.cpp (%d GPU layers, context %d, %d threads)",
             path, gpu_layers, n_ctx, threads)
    try:
        llama = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_gpu_layers=gpu_layers, n_threads=threads,
                                n_threads_batch=threads, seed=0, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise LLMError(f"llama.cpp cannot load the local LLM {p.name}: {str(e).rstrip('.')}. The file may be "
                       "damaged, or its architecture is newer than the installed llama-cpp-python: "
                       "download it again or upgrade llama-cpp-python.") from None
    template = (llama.metadata or {}).get("tokenizer.chat_template")
    if not template:
        llama.close()
        raise LLMError(f"The local LLM {p.name} has no chat template, so it is not a chat (instruct) model; "
                       "use an instruct model's GGUF file.")
    trained = llama.n_ctx_train() if hasattr(llama, "n_ctx_train") else 0
    if 0 < trained < n_ctx:
        log.warning("%s was trained for %d tokens of context; prompts of an edit may need up to %d",
                    p.name, trained, n_ctx)
    return llama


def context_size(max_new_tokens: int) -> int:
    """Room for the longest prompt of an edit plus the answer, rounded up to 256 tokens."""
    want = PROMPT_BUDGET + max_new_tokens
    return min(MAX_CTX, -(-want // 256) * 256)


def _generate(llama: Any, n_ctx: int, messages: list[WireMessage], grammar: Any, temperature: float, seed: int,
              max_tokens: int) -> tuple[str, int, int, int | None]:
    if temperature > 0:
        llama.reset()  # read the whole prompt: the same seed then samples the same answer
    before = _prompt_evaluated(llama)
    try:  # pure temperature sampling, as the transformers backend does: no top-k/top-p/min-p cut
        reply = llama.create_chat_completion(
            messages=messages, grammar=grammar, temperature=temperature, seed=seed, max_tokens=max_tokens,
            top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0)
    except ValueError as e:  # llama-cpp-python's "Requested tokens (...) exceed context window"
        raise LLMError(f"The prompt does not fit the local LLM's context of {n_ctx} tokens "
                       f"({str(e).rstrip('.')}). Lower max tokens or shorten the instruction.") from None
    after = _prompt_evaluated(llama)
    usage = reply.get("usage") or {}
    text = reply["choices"][0]["message"].get("content") or ""
    evaluated = after - before if before is not None and after is not None else None
    return text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), evaluated


def _prompt_evaluated(llama: Any) -> int | None:
    """llama.cpp's own count of prompt tokens evaluated by this context so far."""
    try:
        import llama_cpp

        return int(llama_cpp.llama_perf_context(llama.ctx).n_p_eval)
    except (AttributeError, TypeError):
        return None
