"""SAM checkpoints for tests, built in code from segment_anything's own classes (no download).

- ``build_tiny_sam(path)``: a tiny random-weight SAM (ViT embed 32, depth 2) that still runs the
  real 1024-pixel preprocessing; builds and saves in well under a second.
- ``full_sam_vit_b_path``: the full-size ViT-B architecture with random weights, saved as the
  official ``sam_vit_b_01ec64.pth`` (a plain state dict), cached between runs.

The builders use segment_anything directly, not the code under test, so a loader that reads the
architecture wrongly cannot agree with itself.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from devkit.model_cache import cached_build

TINY_SEED = 1234
VIT_B_NAME = "sam_vit_b_01ec64.pth"

# What build_tiny_sam makes; tests compare the inferred architecture with this.
TINY_ARCH = dict(
    encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=(1,),
    encoder_window_size=14, image_size=1024, patch_size=16, encoder_out_chans=32,
    prompt_embed_dim=32, mask_in_chans=8, decoder_depth=1, decoder_mlp_dim=64,
    decoder_num_heads=8,  # leaves no trace in tensor shapes, so it must be the official 8
    iou_head_hidden_dim=32,
)


def tiny_sam_module(seed: int = TINY_SEED):
    """The tiny SAM as a module (random weights, fixed seed)."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    a = TINY_ARCH
    grid = a["image_size"] // a["patch_size"]
    torch.manual_seed(seed)
    encoder = ImageEncoderViT(
        img_size=a["image_size"], patch_size=a["patch_size"], embed_dim=a["encoder_embed_dim"],
        depth=a["encoder_depth"], num_heads=a["encoder_num_heads"], mlp_ratio=4,
        out_chans=a["encoder_out_chans"], qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True, window_size=a["encoder_window_size"],
        global_attn_indexes=a["encoder_global_attn_indexes"],
    )
    prompt = PromptEncoder(embed_dim=a["prompt_embed_dim"], image_embedding_size=(grid, grid),
                           input_image_size=(a["image_size"], a["image_size"]),
                           mask_in_chans=a["mask_in_chans"])
    decoder = MaskDecoder(
        num_multimask_outputs=3, transformer_dim=a["prompt_embed_dim"], iou_head_depth=3,
        iou_head_hidden_dim=a["iou_head_hidden_dim"],
        transformer=TwoWayTransformer(depth=a["decoder_depth"], embedding_dim=a["prompt_embed_dim"],
                                      mlp_dim=a["decoder_mlp_dim"], num_heads=a["decoder_num_heads"]),
    )
    sam = Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder)
    with torch.no_grad():  # zero-initialised tensors would hide a wrong relative-position layout
        for name, p in sam.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                p.normal_(0, 0.02)
    return sam.eval()


def build_tiny_sam(path: str | Path, seed: int = TINY_SEED) -> Path:
    """Save the tiny SAM's state dict with ``torch.save`` (as the official ``.pth`` files are)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_sam_module(seed).state_dict(), path)
    return path


def build_full_sam_vit_b(path: str | Path) -> Path:
    """Full-size ViT-B with random weights in the official container (a plain state dict)."""
    import torch
    from segment_anything import sam_model_registry

    path = Path(path)
    torch.manual_seed(0)
    torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    return path


def full_sam_vit_b(cache: Path) -> Path:
    """``sam_vit_b_01ec64.pth``, built once into the model cache under ``cache``."""
    def build(out: Path) -> None:
        build_full_sam_vit_b(out / VIT_B_NAME)

    return cached_build(cache, "sam-vit-b", (Path(__file__),), build) / VIT_B_NAME
