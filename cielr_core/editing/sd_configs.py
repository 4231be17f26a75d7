"""Local config folders for loading a single SD1.5 checkpoint file with diffusers, offline.

``from_single_file`` needs the pipeline's config JSONs and tokenizer; offline it cannot fetch them
from the hub. These are SD1.5's published configs (small text), written into a folder together with
a CLIP tokenizer the user already has (e.g. ComfyUI's ``comfy/sd1_tokenizer``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import InputError

TOKENIZER_FILES = ("vocab.json", "merges.txt")

SD15_CLIP = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 768, "vocab_size": 49408,
}
SD15_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "trained_betas": None,
}


def sd15_unet(in_channels: int) -> dict:
    return {
        "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": in_channels,
        "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
        "out_channels": 4, "sample_size": 64,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    }


def _dump(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def write_sd15_config(folder: str | Path, tokenizer_dir: str | Path, in_channels: int = 9) -> Path:
    """A diffusers-layout config folder for an SD1.5 (``in_channels`` 4) or SD1.5 inpainting (9) file."""
    folder, tok = Path(folder), Path(tokenizer_dir)
    missing = [f for f in TOKENIZER_FILES if not (tok / f).is_file()]
    if missing:
        raise InputError(f"{tok} is not a CLIP tokenizer folder: {', '.join(missing)} missing "
                         "(ComfyUI ships one in comfy/sd1_tokenizer)")
    _dump(folder / "model_index.json", {
        "_class_name": "StableDiffusionInpaintPipeline", "feature_extractor": [None, None],
        "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    _dump(folder / "unet" / "config.json", sd15_unet(in_channels))
    _dump(folder / "vae" / "config.json", SD15_VAE)
    _dump(folder / "text_encoder" / "config.json", SD15_CLIP)
    _dump(folder / "scheduler" / "scheduler_config.json", SD15_SCHEDULER)
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tok / name, folder / "tokenizer" / name)
    _dump(folder / "tokenizer" / "tokenizer_config.json", {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
    return folder
