"""A test-only CLIP that generates text the way upstream ComfyUI's LLM text encoders do.

Core ComfyUI after 0.3.75 lets a CLIP whose text encoder is an LLM generate text (its TextGenerate
node, "Generate Text"). No such core installs here, so ``TextGenCLIP`` implements the contract as
upstream's own files state it (repository comfyanonymous/ComfyUI, ``comfy/sd.py`` class CLIP and
``comfy_extras/nodes_textgen.py`` TextGenerate, commit d7593f4830f60e77423f0557afcea7687de28b56;
the lines are kept in tests/data/upstream/comfyui_textgen.txt and a static test checks these
signatures against them):

- ``tokenize(text, return_word_ids=False, **kwargs)``: the keywords TextGenerate passes are
  ``image`` (an IMAGE batch or None), ``skip_template`` (False: the model's chat template wraps the
  text as one user turn), ``min_length``, ``thinking``, and in the newest core ``system_prompt`` (the
  template's system prompt; Comfy-Org/ComfyUI commit 71fbfde26e7a21aa6f9a9f7b1badec9c18b926b5); the
  tokens are ``{name: [[(id, weight), ...]]}``.
- ``generate(tokens, do_sample, max_length, temperature, top_k, top_p, min_p, repetition_penalty,
  seed, presence_penalty)``: the new token ids (greedy when ``do_sample`` is off).
- ``decode(token_ids, skip_special_tokens=True)``: their text.

The model is the small real SmolLM2-135M-Instruct GGUF, run by llama.cpp (quantized: fast enough on
a loaded CPU for the tests; the contract, not the engine, is what stands in). The text encoders this
stands in for (4B to 12B LLMs) answer in the JSON schema a prompt states; a 135M model only copies
the schema's text. So where the prompt states a JSON schema (the last outermost JSON object in it
with "type": "object" and "properties"), decoding follows that schema through llama.cpp's grammar.
The prompt is all it gets, as with a real encoder: a request that states no schema is decoded
freely. With ``reads_images`` on it stands in for a vision encoder (Qwen2.5-VL of Qwen-Image): an
image adds tokens that state its size, as a vision encoder adds its image tokens; otherwise images
are ignored, as a text-only encoder (Qwen3 of Z-Image) ignores them. Every call is written as a
JSON line to ``log_file`` for the tests to read.
"""

from __future__ import annotations

import atexit
import json
import re
import threading
from pathlib import Path

NAME = "smollm2"
_MODELS: dict[str, tuple] = {}
_LOCK = threading.Lock()


def _load(gguf: Path) -> tuple:
    """(llama.cpp model, chat formatter) of the GGUF file, opened once per process."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    key = str(gguf.resolve())
    with _LOCK:
        if key not in _MODELS:
            llama = llama_cpp.Llama(model_path=key, n_ctx=4096, n_threads=1, n_threads_batch=1, seed=0, verbose=False)
            atexit.register(llama.close)  # its own finalizer fails once the interpreter is going down
            special = [llama.detokenize([t], special=True).decode() for t in (llama.token_eos(), llama.token_bos())]
            chat = Jinja2ChatFormatter(llama.metadata["tokenizer.chat_template"], eos_token=special[0],
                                       bos_token=special[1])
            _MODELS[key] = (llama, chat)
        return _MODELS[key]


def _stated_schema(prompt: str) -> dict | None:
    """The last outermost JSON object in the prompt that is an object schema, or None."""
    decoder = json.JSONDecoder()
    found, pos = None, 0
    while (start := prompt.find("{", pos)) >= 0:
        try:
            value, end = decoder.raw_decode(prompt, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        if isinstance(value, dict) and value.get("type") == "object" and "properties" in value:
            found = value
        pos = end
    return found


def _grammar(schema: dict):
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    gbnf = re.sub(r"^space ::= .*$", 'space ::= ""', json_schema_to_gbnf(json.dumps(schema)), flags=re.MULTILINE)
    return LlamaGrammar.from_string(gbnf, verbose=False)


class TextGenCLIP:
    def __init__(self, gguf: str | Path, reads_images: bool = False, log_file: str = ""):
        self.gguf = Path(gguf)
        self.reads_images = reads_images
        self.log_file = log_file

    def _log(self, event: dict) -> None:
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.write(json.dumps(event) + "\n")

    def tokenize(self, text, return_word_ids=False, **kwargs):
        llama, chat = _load(self.gguf)
        image = kwargs.get("image")
        shown = ("skip_template", "min_length", "thinking", "system_prompt")
        self._log({"event": "tokenize", "keywords": sorted(kwargs), "text": text,
                   "image": None if image is None else list(image.shape),
                   **{k: kwargs[k] for k in shown if k in kwargs}})
        if image is not None and self.reads_images:
            text = f"(An image of {image.shape[2]}x{image.shape[1]} pixels is attached.)\n{text}"
        if not kwargs.get("skip_template"):
            system = [{"role": "system", "content": kwargs["system_prompt"]}] if kwargs.get("system_prompt") else []
            text = chat(messages=[*system, {"role": "user", "content": text}]).prompt
        ids = llama.tokenize(text.encode(), add_bos=False, special=True)
        return {NAME: [[(int(i), 1.0) for i in ids]]}

    def generate(self, tokens, do_sample=True, max_length=256, temperature=1.0, top_k=50, top_p=0.95, min_p=0.0,
                 repetition_penalty=1.0, seed=None, presence_penalty=0.0):
        import llama_cpp

        llama, _ = _load(self.gguf)
        prompt = [t[0] for t in tokens[NAME][0]]
        schema = _stated_schema(llama.detokenize(prompt).decode("utf-8", errors="replace"))
        sample = bool(do_sample) and temperature > 0
        new: list[int] = []
        with _LOCK:
            llama.set_seed(0 if seed is None else int(seed))
            for token in llama.generate(prompt, top_k=top_k, top_p=top_p, min_p=min_p,
                                        temp=temperature if sample else 0.0, repeat_penalty=repetition_penalty,
                                        presence_penalty=presence_penalty, reset=True,
                                        grammar=_grammar(schema) if schema else None):
                if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token) or len(new) >= max_length:
                    break
                new.append(int(token))
        self._log({"event": "generate", "do_sample": do_sample, "max_length": max_length, "temperature": temperature,
                   "top_k": top_k, "top_p": top_p, "min_p": min_p, "repetition_penalty": repetition_penalty,
                   "seed": seed, "presence_penalty": presence_penalty, "prompt_tokens": len(prompt),
                   "new_tokens": len(new), "schema": schema is not None})
        return new

    def decode(self, token_ids, skip_special_tokens=True):
        llama, _ = _load(self.gguf)
        return llama.detokenize(list(token_ids), special=not skip_special_tokens).decode("utf-8", errors="replace")


class TestOnlyTextGenCLIP:
    """A CLIP that generates text (upstream's contract) over the SmolLM2 GGUF file at ``gguf``."""

    CATEGORY = "testing/cielr"
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"gguf": ("STRING", {"default": ""}),
                             "reads_images": ("BOOLEAN", {"default": False}),
                             "log_file": ("STRING", {"default": ""})}}

    def load(self, gguf: str, reads_images: bool, log_file: str):
        return (TextGenCLIP(gguf, reads_images, log_file),)


NODE_CLASS_MAPPINGS = {"TestOnlyTextGenCLIP": TestOnlyTextGenCLIP}
