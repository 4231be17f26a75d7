"""Diffusion models for the editing tests, built in code (no download, random weights).

- ``build_tiny_inpaint_pipeline(folder)``: a tiny diffusers ``StableDiffusionInpaintPipeline`` (UNet
  with 9 input channels, a 4-level VAE that downsamples by 8 like SD's, a 2-layer CLIP text encoder
  with a byte-level tokenizer written deterministically), saved in diffusers layout. Seconds.
- ``build_sd15_checkpoints(folder, reduced=False)``: SD1.5 checkpoints with random weights, built from
  ComfyUI's own model classes in a subprocess that imports the ComfyUI install (the test process
  never imports ``comfy``): a plain SD1.5 (4-channel UNet) and an inpainting one (9-channel UNet), their
  UNets in fp8 and text encoder and VAE in fp16, safetensors in the original single-file layout that
  CheckpointLoaderSimple and diffusers' single-file loader read (both cast the fp8 weights on load), and a
  VAE with 16 latent channels (an SD3/Flux-like VAE) for the MODEL/VAE mismatch test. Full size: 1.3 GB
  each, what the benchmarks time. ``reduced``: the UNet keeps SD1.5's keys and what ComfyUI's detection
  matches (320 channels, 768-wide context, no linear projections) but has one res block and 320 channels
  at every level (73M parameters instead of 860M; text encoder and VAE at full size): 0.5 GB each, and a
  sampling step about ten times cheaper, for the tests, which check what the pack does with a model, not
  its cost.
- ``build_sd15_inpainting(folder)``: only the full-size inpainting file, for the test that diffusers
  reads it with the library's SD1.5 config.
  Each set is cached in the ``model_cache`` folder; seconds to build the first time.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from devkit import COMFYUI
from devkit.model_cache import cached_build, run_comfy_script
from devkit.tokens import byte_to_unicode

SD15_NAME = "cielr-random-sd15-unet-fp8.safetensors"
SD15_INPAINT_NAME = "cielr-random-sd15-inpainting-unet-fp8.safetensors"
VAE16_NAME = "cielr-random-vae-16ch.safetensors"
TINY_SEED = 0


@dataclass(frozen=True)
class SD15Files:
    checkpoint: Path  # SD1.5, 4-channel UNet
    inpainting: Path  # SD1.5 inpainting, 9-channel UNet
    vae16: Path  # a VAE whose latents do not fit SD1.5


# --- tiny diffusers pipeline -------------------------------------------------------------------

def write_byte_tokenizer(folder: Path) -> int:
    """A CLIP tokenizer over single bytes (no merges), written in a fixed order: deterministic.
    Returns the vocabulary size."""
    chars = list(byte_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>"}))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
         "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}))
    return len(vocab)


def build_tiny_inpaint_pipeline(folder: str | Path, seed: int = TINY_SEED) -> Path:
    """Save a tiny random SD inpainting pipeline (diffusers layout) into ``folder``."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tok_dir = folder / "_tokenizer_src"  # the pipeline saves its own copy under tokenizer/
    vocab_size = write_byte_tokenizer(tok_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=8, sample_size=64)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1))
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(tok_dir)
    return folder


# --- full-size SD1.5 from ComfyUI's classes, in a subprocess -------------------------------------

_BUILDER = textwrap.dedent(r'''
    import sys, torch
    sys.path.insert(0, sys.argv[1])
    reduced = sys.argv[2] == "reduced"
    out_sd15, out_inpaint, out_vae16 = sys.argv[3:6]  # "-": not wanted
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # before model_management is imported: no GPU probing
    import comfy.ops
    import comfy.utils
    from comfy.clip_model import CLIPTextModel
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import json, os

    torch.manual_seed(0)
    ops = comfy.ops.disable_weight_init  # ComfyUI's own layers; they skip init, so we do it below
    INIT = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear, torch.nn.GroupNorm,
            torch.nn.LayerNorm, torch.nn.Embedding)

    def init(module):
        with torch.no_grad():
            for m in module.modules():
                for cls in INIT:
                    if isinstance(m, cls):
                        cls.reset_parameters(m)  # torch's default init, not comfy's no-op
                        break
        return module

    def half(sd, prefix, dtype=torch.float16):
        return {prefix + k: v.detach().to(dtype).contiguous() for k, v in sd.items()}

    # SD1.5's UNet config, as comfy.model_detection lists it (SD15 / SD15_diffusers_inpaint)
    SD15 = dict(image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False, adm_in_channels=None,
                model_channels=320, num_res_blocks=[2, 2, 2, 2], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                channel_mult=[1, 2, 4, 4], transformer_depth_middle=1, use_linear_in_transformer=False,
                context_dim=768, num_heads=8, num_head_channels=-1,
                transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                use_temporal_attention=False, use_temporal_resblock=False)
    if reduced:  # detection matches neither the depths nor the widths of the levels
        SD15.update(num_res_blocks=[1, 1, 1, 1], channel_mult=[1, 1, 1, 1], transformer_depth=[1, 1, 1, 0],
                    transformer_depth_output=[1, 1, 1, 1, 1, 1, 0, 0])

    def vae_sd(z):
        dd = {"double_z": True, "z_channels": z, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
              "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
        return init(AutoencoderKL(ddconfig=dd, embed_dim=z)).state_dict()

    clip_cfg = json.load(open(os.path.join(sys.argv[1], "comfy", "sd1_clip_config.json")))
    clip = init(CLIPTextModel(clip_cfg, torch.float32, "cpu", ops)).state_dict()
    clip.pop("text_projection.weight", None)  # SD1.5 files do not carry it
    shared = {**half(clip, "cond_stage_model.transformer."), **half(vae_sd(4), "first_stage_model.")}

    # the UNets in fp8, half the disk of fp16: ComfyUI casts them on load, as users' fp8 files, and diffusers
    # to its fp32 parameters
    for in_channels, path in ((4, out_sd15), (9, out_inpaint)):
        if path == "-":
            continue
        unet = init(UNetModel(in_channels=in_channels, dtype=torch.float32, device="cpu", operations=ops, **SD15))
        sd = {**half(unet.state_dict(), "model.diffusion_model.", torch.float8_e4m3fn), **shared}
        del unet
        comfy.utils.save_torch_file(sd, path + ".tmp")
        os.replace(path + ".tmp", path)
        del sd
    if out_vae16 != "-":
        comfy.utils.save_torch_file(half(vae_sd(16), ""), out_vae16 + ".tmp")
        os.replace(out_vae16 + ".tmp", out_vae16)
''')


def _build(folder: str | Path, name: str, size: str, names: tuple[str, str, str]) -> Path:
    """The set ``name`` of the files in ``names`` ("-": not built) at ``size``, built once into the cache."""
    wanted = [n for n in names if n != "-"]

    def build(out: Path) -> None:
        if all((out / n).is_file() for n in wanted):  # written by a build killed before the rename
            return
        paths = [str(out / n) if n != "-" else "-" for n in names]
        run_comfy_script(["-c", _BUILDER, str(COMFYUI), size, *paths], "the random SD1.5 checkpoints", timeout=1200)

    return cached_build(folder, name, (_BUILDER, size, *names), build)


@cache
def build_sd15_checkpoints(folder: str | Path, reduced: bool = False) -> SD15Files:
    """The random SD1.5 files (full size, or ``reduced`` for the tests), built once into the model cache."""
    names = (SD15_NAME, SD15_INPAINT_NAME, VAE16_NAME)
    if reduced:
        names = tuple(n.replace("sd15-", "sd15-reduced-") for n in names[:2]) + names[2:]
    out = _build(folder, "sd15-reduced" if reduced else "sd15", "reduced" if reduced else "full", names)
    return SD15Files(*(out / n for n in names))


@cache
def build_sd15_inpainting(folder: str | Path) -> Path:
    """Only the full-size SD1.5 inpainting file."""
    return _build(folder, "sd15-inpainting", "full", ("-", SD15_INPAINT_NAME, "-")) / SD15_INPAINT_NAME
