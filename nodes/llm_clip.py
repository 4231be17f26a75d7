"""CIELR LLM (from a text encoder): the LLM a connected CLIP already holds, as a CIELR_LLM.

Core ComfyUI after 0.3.75 generates text with text encoders that are LLMs (its Generate Text node,
TextGenerate): Qwen2.5-VL of Qwen-Image (which reads images too), Qwen3 of Z-Image, Gemma and
others. A user who loaded one for their diffusion model needs no second LLM for CIELR. The contract
is the CLIP's ``tokenize(prompt, image=..., skip_template=..., min_length=..., thinking=...)`` (newer cores
also take ``system_prompt=...``),
``generate(tokens, do_sample=..., max_length=..., temperature=..., top_k=..., top_p=..., min_p=...,
repetition_penalty=..., seed=...)`` and ``decode(ids)``; this module calls exactly that, and only with
keywords every core that has it accepts. A core without it (0.3.75 among them) is detected by the
missing methods, never by its version number.
"""

from __future__ import annotations

import numpy as np

from cielr_core.errors import InputError
from cielr_core.llm.base import LLMError

from .base import CIELRNode
from .llm import SEED, TEMPERATURE

NODE = "CIELR LLM (from a text encoder)"
FEATURE = ("text generation by text encoders (CLIP.generate and CLIP.decode, the feature behind core's "
           "Generate Text node)")
OTHER_NODES = "CIELR LLM (local) or CIELR LLM (OpenAI-compatible server)"
PROBE = "Name the objects."
PROBE_SIDE = 64  # a small grey image: enough for a vision tokenizer to add its image tokens


def can_generate(clip) -> bool:
    """Whether the CLIP offers upstream's text-generation contract."""
    return all(callable(getattr(clip, name, None)) for name in ("tokenize", "generate", "decode"))


def require_generation(clip) -> None:
    if clip is None:
        raise InputError(f"{NODE}: no CLIP is connected; connect the CLIP output of a loader.")
    if not can_generate(clip):
        raise LLMError(f"{NODE}: this ComfyUI cannot generate text with a text encoder: its CLIP has no "
                       f"'generate' and 'decode' ({FEATURE}; ComfyUI 0.3.75 and older lack it). Update ComfyUI, "
                       f"or use {OTHER_NODES} instead.")


def _shape(value) -> object:
    """A comparable outline of tokens: ids as they are, tensors and other objects by kind and shape."""
    if isinstance(value, dict):
        return tuple((k, _shape(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_shape(v) for v in value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return (type(value).__name__, tuple(getattr(value, "shape", ())))


def reads_images(clip) -> bool:
    """Whether the CLIP's tokenizer takes an image in: its tokens change when one comes with the text
    (a vision encoder adds image tokens; a text-only one ignores the image or refuses it)."""
    import torch

    image = torch.full((1, PROBE_SIDE, PROBE_SIDE, 3), 0.5)
    try:
        plain = _tokenize(clip, PROBE, None)
        with_image = _tokenize(clip, PROBE, image)
    except (TypeError, ValueError):
        return False
    return _shape(plain) != _shape(with_image)


def takes_system_prompt(clip) -> bool:
    """Whether the CLIP's tokenizer puts a system prompt into the model's chat template (newer cores): its tokens
    change with the system prompt. Older tokenizers ignore the keyword or refuse it."""
    try:
        first = _tokenize(clip, PROBE, None, system="Answer briefly.")
        second = _tokenize(clip, PROBE, None, system="You name the objects in photos, one per line.")
    except (TypeError, ValueError):
        return False
    return _shape(first) != _shape(second)


def _tokenize(clip, prompt: str, image, system: str | None = None):
    # the model's own chat template wraps the prompt (skip_template off); no thinking: answers are JSON
    if system is None:
        return clip.tokenize(prompt, image=image, skip_template=False, min_length=1, thinking=False)
    return clip.tokenize(prompt, image=image, skip_template=False, min_length=1, thinking=False, system_prompt=system)


def _first_sequence(ids):
    """The generated ids: cores have returned one sequence, or a batch of one."""
    if hasattr(ids, "dim"):
        return ids[0] if ids.dim() == 2 else ids
    if isinstance(ids, (list, tuple)) and ids:
        first = ids[0]
        if isinstance(first, (list, tuple)) or (hasattr(first, "dim") and first.dim() == 1):
            return first
    return ids


class ClipGenerate:
    """``generate(messages, image) -> text`` over a CLIP that generates (for ``TextGenLLM``). With
    ``system_prompt`` the system message goes in as the template's system prompt (cores whose tokenizers take
    one), else it opens the single user turn."""

    def __init__(self, clip, temperature: float, seed: int, max_tokens: int, system_prompt: bool = False):
        self.clip = clip
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.max_tokens = int(max_tokens)
        self.system_prompt = bool(system_prompt)

    def __call__(self, messages, image: np.ndarray | None) -> str:
        from cielr_core.llm.textgen import one_turn

        from .bridge import to_image

        pixels = None if image is None else to_image(image)
        if self.system_prompt and messages and messages[0]["role"] == "system":
            tokens = _tokenize(self.clip, one_turn(messages[1:]), pixels, system=messages[0]["content"])
        else:
            tokens = _tokenize(self.clip, one_turn(messages), pixels)
        sample = self.temperature > 0
        try:
            # pure temperature sampling, as the other backends do (top_k 0 and top_p 1 turn the cuts off);
            # presence_penalty is left out: cores before it was added do not take it
            ids = self.clip.generate(tokens, do_sample=sample, max_length=self.max_tokens,
                                     temperature=self.temperature if sample else 1.0, top_k=0, top_p=1.0, min_p=0.0,
                                     repetition_penalty=1.0, seed=self.seed)
        except (AttributeError, NotImplementedError) as e:
            raise LLMError(f"{NODE}: the text encoder connected cannot generate text ({e}); connect the CLIP of an "
                           "LLM text encoder (e.g. Qwen2.5-VL of Qwen-Image, Qwen3 of Z-Image, Gemma), or use "
                           f"{OTHER_NODES}.") from None
        return self.clip.decode(_first_sequence(ids))


class CIELRLLMFromCLIP(CIELRNode):
    """The LLM inside a text encoder you already loaded (Qwen2.5-VL of Qwen-Image, Qwen3 of Z-Image, Gemma...) as
    CIELR's LLM: no second model and no server. It sends the photo too when the encoder reads images. Answers are
    checked like every LLM's. Needs a ComfyUI whose Generate Text node exists (newer than 0.3.75)."""

    FUNCTION = "connect"
    OUTPUTS = (("CIELR_LLM", "llm", "An LLM for Propose Labels, Refine Scene and Decompose; it also reads the photo "
                                    "when the text encoder reads images."),)
    INPUTS = {"required": {
        "clip": ("CLIP", {"tooltip": "The CLIP of an LLM text encoder (e.g. Qwen2.5-VL from Qwen-Image's loader, "
                                     "Qwen3 from Z-Image's, Gemma), the one your diffusion model already uses. Needs "
                                     "a ComfyUI whose Generate Text node can use it."}),
        "temperature": TEMPERATURE,
        "seed": SEED,
        "max_tokens": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 16,
                               "tooltip": "The longest answer, in tokens. Plans need about 100; thinking models "
                                          "more."}),
    }}

    def connect(self, clip, temperature: float, seed: int, max_tokens: int):
        from cielr_core.llm import TextGenLLM

        require_generation(clip)
        generate = ClipGenerate(clip, temperature, seed, max_tokens, system_prompt=takes_system_prompt(clip))
        return (TextGenLLM(generate, supports_images=reads_images(clip), name="text encoder's LLM"),)


NODE_CLASS_MAPPINGS = {"CIELRLLMFromCLIP": CIELRLLMFromCLIP}
NODE_DISPLAY_NAME_MAPPINGS = {"CIELRLLMFromCLIP": NODE}
