"""Test-only ComfyUI nodes, loaded only by the family tests' own server (never shipped).

- ``CIELRTestTextEncoder``: a CLIP of the family's real conditioning shape (T5-XXL 4096 + CLIP-L
  pooled 768 for Flux.1, Mistral 15360 for Flux.2, Qwen2.5-VL 3584 for Qwen-Image, Qwen3-4B 2560
  for Z-Image, CLIP-L+G 2048 + pooled 1280 for SDXL) whose values are a fixed function of the text.
  ComfyUI's stock text-encoder loaders build full-size encoders (5-17 GB), too big for the tests;
  the diffusion models, VAEs and everything after the text encoder are real. It accepts ``images``
  as the Qwen2.5-VL tokenizer does and adds vision tokens for them.
- ``CIELRTestRecordSampling``: MODEL and VAE pass through, wrapped so that every diffusion-model call
  (the conditioning it receives: c_concat, ref_latents, guidance, c_crossattn) and every VAE encode
  and text encode is written as a JSON line to a file, for the tests to assert on.
"""

from __future__ import annotations

import copy
import hashlib
import json

import torch

SHAPES = {  # family: (tokens, width, pooled width or None)
    "sdxl": (77, 2048, 1280),
    "flux": (256, 4096, 768),
    "flux2": (64, 15360, None),
    "qwen_image": (34, 3584, None),
    "z_image": (32, 2560, None),
}
VISION_TOKENS = 16
LOG = {"path": None}


def _log(event: dict) -> None:
    if LOG["path"]:
        with open(LOG["path"], "a") as f:
            f.write(json.dumps(event) + "\n")


def _values(text: str, shape: tuple) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.5


class StandInCLIP:
    def __init__(self, family: str):
        self.family = family
        self.tokens, self.width, self.pooled = SHAPES[family]

    def tokenize(self, text: str, images=None, **kwargs):
        return {"text": text, "images": [list(i.shape) for i in images or []]}

    def encode_from_tokens_scheduled(self, tokens, **kwargs):
        n = self.tokens + VISION_TOKENS * len(tokens["images"])
        cond = _values(tokens["text"], (1, n, self.width))
        pooled = _values("pooled " + tokens["text"], (1, self.pooled)) if self.pooled else None
        _log({"event": "text", "family": self.family, "text": tokens["text"], "images": tokens["images"],
              "shape": list(cond.shape)})
        return [[cond, {"pooled_output": pooled}]]


class CIELRTestTextEncoder:
    CATEGORY = "CIELR/testing"
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(SHAPES),)}}

    def load(self, family):
        return (StandInCLIP(family),)


def _shapes(value):
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shapes(v) for v in value]
    return None


class CIELRTestRecordSampling:
    CATEGORY = "CIELR/testing"
    RETURN_TYPES = ("MODEL", "VAE")
    FUNCTION = "wrap"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "vae": ("VAE",), "log_file": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # a fresh wrapper (and log) for every run

    def wrap(self, model, vae, log_file):
        LOG["path"] = log_file

        def unet(apply_model, args):
            c = args["c"]
            guidance = c.get("guidance")
            _log({"event": "sample", "input": list(args["input"].shape),
                  "c_concat": _shapes(c.get("c_concat")), "ref_latents": _shapes(c.get("ref_latents")),
                  "guidance": guidance.tolist() if isinstance(guidance, torch.Tensor) else guidance,
                  "c_crossattn": _shapes(c.get("c_crossattn"))})
            return apply_model(args["input"], args["timestep"], **c)

        wrapped = model.clone()
        wrapped.set_model_unet_function_wrapper(unet)
        counted = copy.copy(vae)
        original = vae.encode

        def encode(pixels, *a, **k):
            _log({"event": "encode", "shape": list(pixels.shape)})
            return original(pixels, *a, **k)

        counted.encode = encode
        return (wrapped, counted)


NODE_CLASS_MAPPINGS = {"CIELRTestTextEncoder": CIELRTestTextEncoder,
                       "CIELRTestRecordSampling": CIELRTestRecordSampling}
