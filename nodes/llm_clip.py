"""CIELR LLM (from a text encoder): the LLM a connected CLIP already holds, as a CIELR_LLM.

Core ComfyUI after 0.3.75 generates text with text encoders that are LLMs (its Generate Text node,
TextGenerate): Qwen2.5-VL of Qwen-Image (which reads images too), Qwen3 of Z-Image, Gemma and
others. A user who loaded one for their diffusion model needs no second LLM for CIELR. The contract
is the CLIP's ``tokenize(prompt, image=..., skip_template=..., min_length=..., thinking=...)`` (newer cores
also take ``system_prompt=...``),
``generate(tokens, do_sample=..., max_length=..., temperature=..., top_k=..., top_p=..., min_p=...,
repetition_penalty=..., seed=...)`` and ``decode(ids)``; this module calls exactly that, and only with
keywords every core that has it accepts. A core without it (0.3.75 among them) is detected by the
missing methods, never by its version number. The calls themselves live in ``comfy_internals``.
"""

from __future__ import annotations

import numpy as np
from comfy_api.latest import io

from cielr_core import settings as S
from cielr_core.errors import InputError
from cielr_core.llm.base import LLMError

from . import comfy_internals as comfy
from .base import LLM, REASONING, CIELRNode, out, socket, widget

NODE = "CIELR LLM (from a text encoder)"
FEATURE = ("text generation by text encoders (CLIP.generate and CLIP.decode, the feature behind core's "
           "Generate Text node)")
OTHER_NODES = "CIELR LLM (local) or CIELR LLM (OpenAI-compatible server)"
PROBE = "Name the objects."
PROBE_SIDE = 64  # a small grey image: enough for a vision tokenizer to add its image tokens


def require_generation(clip) -> None:
    if clip is None:
        raise InputError(f"{NODE}: no CLIP is connected; connect the CLIP output of a loader.")
    if not comfy.can_generate(clip):
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
        plain = comfy.generation_tokens(clip, PROBE, None)
        with_image = comfy.generation_tokens(clip, PROBE, image)
    except (TypeError, ValueError):
        return False
    return _shape(plain) != _shape(with_image)


def takes_system_prompt(clip) -> bool:
    """Whether the CLIP's tokenizer puts a system prompt into the model's chat template (newer cores): its tokens
    change with the system prompt. Older tokenizers ignore the keyword or refuse it."""
    try:
        first = comfy.generation_tokens(clip, PROBE, None, system="Answer briefly.")
        second = comfy.generation_tokens(clip, PROBE, None, system="You name the objects in photos, one per line.")
    except (TypeError, ValueError):
        return False
    return _shape(first) != _shape(second)


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
            tokens = comfy.generation_tokens(self.clip, one_turn(messages[1:]), pixels, system=messages[0]["content"])
        else:
            tokens = comfy.generation_tokens(self.clip, one_turn(messages), pixels)
        try:
            return comfy.generate_text(self.clip, tokens, self.max_tokens, self.temperature, self.seed)
        except (AttributeError, NotImplementedError) as e:
            raise LLMError(f"{NODE}: the text encoder connected cannot generate text ({e}); connect the CLIP of an "
                           "LLM text encoder (e.g. Qwen2.5-VL of Qwen-Image, Qwen3 of Z-Image, Gemma), or use "
                           f"{OTHER_NODES}.") from None


class CIELRLLMFromCLIP(CIELRNode, title=NODE, stage=REASONING,
                       aliases=("text encoder llm", "qwen vl", "clip generate", "llm from clip")):
    """The LLM inside a text encoder you already loaded (Qwen2.5-VL of Qwen-Image, Qwen3 of Z-Image, Gemma...) as
    CIELR's LLM: no second model and no server. It sends the photo too when the encoder reads images. Answers are
    checked like every LLM's. Needs a ComfyUI whose Generate Text node exists (newer than 0.3.75)."""

    OUTPUTS = (out(LLM, "llm", "An LLM for Propose Labels, Refine Scene and Decompose; it also reads the photo "
                               "when the text encoder reads images."),)
    INPUTS = (socket(io.Clip, "clip", "The CLIP of an LLM text encoder (e.g. Qwen2.5-VL from Qwen-Image's loader, "
                                      "Qwen3 from Z-Image's, Gemma), the one your diffusion model already uses. Needs "
                                      "a ComfyUI whose Generate Text node can use it."),
              widget(S.TEMPERATURE), widget(S.LLM_SEED), widget(S.LLM_MAX_TOKENS))

    @classmethod
    def execute(cls, clip, temperature: float, seed: int, max_tokens: int) -> io.NodeOutput:
        from cielr_core.llm import TextGenLLM
        from cielr_core.llm.base import check_sampling

        require_generation(clip)
        check_sampling(temperature, seed, max_tokens)
        generate = ClipGenerate(clip, temperature, seed, max_tokens, system_prompt=takes_system_prompt(clip))
        return io.NodeOutput(TextGenLLM(generate, supports_images=reads_images(clip), name="text encoder's LLM"))


NODES = (CIELRLLMFromCLIP,)
