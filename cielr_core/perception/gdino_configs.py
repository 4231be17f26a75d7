"""GroundingDINO architectures: a built-in table, JSON configs, and recognition from a state dict.

The table holds the two released checkpoints. Their values are those of the configs bundled with
groundingdino (GroundingDINO_SwinT_OGC.py, GroundingDINO_SwinB_cfg.py), written out here as data so
that no ``.py`` config is ever executed. Other sizes are described by a JSON file beside the
weights whose keys mirror groundingdino's config names, plus an optional ``"swin"`` object with
the SwinTransformer arguments (embed_dim, depths, num_heads, window_size) for backbones that are
not one of groundingdino's named ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..weights import read_json_object

# groundingdino's own names for its Swin backbones, with the sizes its build_swin_transformer uses.
SWIN_BACKBONES: dict[str, dict[str, Any]] = {
    "swin_T_224_1k": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7),
    "swin_B_224_22k": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=7),
    "swin_B_384_22k": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12),
    "swin_L_224_22k": dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=7),
    "swin_L_384_22k": dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=12),
}

# Shared by both released configs (GroundingDINO_SwinT_OGC.py and GroundingDINO_SwinB_cfg.py).
# Gradient checkpointing only matters for training, so it is off for inference.
BASE_CONFIG: dict[str, Any] = {
    "batch_size": 1, "modelname": "groundingdino", "backbone": "swin_T_224_1k",
    "position_embedding": "sine", "pe_temperatureH": 20, "pe_temperatureW": 20,
    "return_interm_indices": [1, 2, 3], "backbone_freeze_keywords": None,
    "enc_layers": 6, "dec_layers": 6, "pre_norm": False, "dim_feedforward": 2048, "hidden_dim": 256,
    "dropout": 0.0, "nheads": 8, "num_queries": 900, "query_dim": 4, "num_patterns": 0,
    "num_feature_levels": 4, "enc_n_points": 4, "dec_n_points": 4, "two_stage_type": "standard",
    "two_stage_bbox_embed_share": False, "two_stage_class_embed_share": False,
    "transformer_activation": "relu", "dec_pred_bbox_embed_share": True, "dn_box_noise_scale": 1.0,
    "dn_label_noise_ratio": 0.5, "dn_label_coef": 1.0, "dn_bbox_coef": 1.0, "embed_init_tgt": True,
    "dn_labelbook_size": 2000, "max_text_len": 256, "text_encoder_type": "bert-base-uncased",
    "use_text_enhancer": True, "use_fusion_layer": True, "use_checkpoint": False,
    "use_transformer_ckpt": False, "use_text_cross_attention": True, "text_dropout": 0.0,
    "fusion_dropout": 0.0, "fusion_droppath": 0.1, "sub_sentence_present": True,
}

# The released checkpoints: name -> (file name, config overrides).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "SwinT-OGC": {"file": "groundingdino_swint_ogc.pth", "config": {"backbone": "swin_T_224_1k"}},
    "SwinB-COGCOOR": {"file": "groundingdino_swinb_cogcoor.pth", "config": {"backbone": "swin_B_384_22k"}},
}

# Keys a JSON config may hold besides groundingdino's own names.
SWIN_KEYS = ("embed_dim", "depths", "num_heads", "window_size")
JSON_HINT = (
    "To load another size, put a JSON file beside the weights (same name with .json, or config.json "
    "in the same folder) whose keys mirror groundingdino's config names, e.g. "
    '{"backbone": "swin_T_224_1k", "enc_layers": 6, "dec_layers": 6, "num_queries": 900}; '
    'a backbone that is not one of groundingdino\'s named Swin sizes takes a "swin" object with '
    "embed_dim, depths, num_heads and window_size"
)


def full_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The base config with ``overrides`` applied (a plain dict; build code wraps it)."""
    cfg = dict(BASE_CONFIG)
    cfg.update(overrides)
    return cfg


def swin_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The SwinTransformer size a config describes (an explicit "swin" object wins)."""
    if cfg.get("swin"):
        return {k: cfg["swin"][k] for k in SWIN_KEYS}
    return dict(SWIN_BACKBONES[cfg["backbone"]])


# --- recognising a state dict ---------------------------------------------------------------

_BLOCK = re.compile(r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.")
_ENC = re.compile(r"^transformer\.encoder\.layers\.(\d+)\.")
_DEC = re.compile(r"^transformer\.decoder\.layers\.(\d+)\.")


def signature(sd: Mapping[str, Any]) -> dict[str, Any] | None:
    """Sizes read from tensor shapes (works on real tensors, meta tensors or shape stand-ins).

    None when the state dict does not look like a GroundingDINO with a Swin backbone.
    """
    patch = sd.get("backbone.0.patch_embed.proj.weight")
    table = sd.get("backbone.0.layers.0.blocks.0.attn.relative_position_bias_table")
    if patch is None or table is None:
        return None
    depths: dict[int, int] = {}
    for key in sd:
        m = _BLOCK.match(key)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            depths[i] = max(depths.get(i, 0), j + 1)
    heads = []
    for i in sorted(depths):
        t = sd.get(f"backbone.0.layers.{i}.blocks.0.attn.relative_position_bias_table")
        heads.append(int(t.shape[1]) if t is not None else 0)
    window = int(round((int(table.shape[0]) ** 0.5 + 1) / 2))  # table has (2w-1)^2 rows
    sig: dict[str, Any] = {
        "embed_dim": int(patch.shape[0]),
        "depths": [depths[i] for i in sorted(depths)],
        "num_heads": heads,
        "window_size": window,
        "enc_layers": 1 + max((int(m.group(1)) for k in sd if (m := _ENC.match(k))), default=-1),
        "dec_layers": 1 + max((int(m.group(1)) for k in sd if (m := _DEC.match(k))), default=-1),
    }
    tgt = sd.get("transformer.tgt_embed.weight")
    if tgt is not None:
        sig["num_queries"], sig["hidden_dim"] = int(tgt.shape[0]), int(tgt.shape[1])
    ffn = sd.get("transformer.encoder.layers.0.linear1.weight")
    if ffn is not None:
        sig["dim_feedforward"] = int(ffn.shape[0])
    return sig


def config_signature(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The same sizes as ``signature`` but predicted from a config."""
    sig = swin_params(cfg)
    sig = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in sig.items()}
    sig.update(enc_layers=cfg["enc_layers"], dec_layers=cfg["dec_layers"], num_queries=cfg["num_queries"],
               hidden_dim=cfg["hidden_dim"], dim_feedforward=cfg["dim_feedforward"])
    return sig


def recognise(sd: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(architecture name, full config) of the built-in table entry the state dict matches."""
    sig = signature(sd)
    if sig is None:
        return None
    for name, entry in ARCHITECTURES.items():
        cfg = full_config(entry["config"])
        expected = config_signature(cfg)
        if all(sig.get(k) == v for k, v in expected.items()):
            return name, cfg
    return None


def describe(sig: Mapping[str, Any] | None) -> str:
    if sig is None:
        return "no Swin backbone keys (backbone.0.patch_embed.proj.weight) were found"
    return ("Swin embed_dim {embed_dim}, depths {depths}, window {window_size}, "
            "{enc_layers} encoder / {dec_layers} decoder layers".format(**sig))


def known_architectures() -> str:
    return ", ".join(f"{name} ({entry['file']})" for name, entry in ARCHITECTURES.items())


# --- JSON configs ---------------------------------------------------------------------------


def json_config_path(weights: Path) -> Path | None:
    """``<stem>.json`` beside the weights, else a ``config.json`` there that is not an HF config."""
    beside = weights.with_suffix(".json")
    if beside.is_file():
        return beside
    folder_cfg = weights.parent / "config.json"
    if folder_cfg.is_file():
        try:
            data = json.loads(folder_cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return folder_cfg  # read_json_config reports the problem
        if isinstance(data, dict) and "model_type" not in data:
            return folder_cfg
    return None


def read_json_config(path: Path) -> dict[str, Any]:
    """A full config from a JSON file; unknown keys are an error so typos do not pass silently."""
    expected = "a JSON object whose keys mirror groundingdino's config names"
    data = read_json_object(path, path, expected)
    unknown = sorted(k for k in data if k not in BASE_CONFIG and k != "swin")
    if unknown:
        raise CheckpointError(path, f"unknown keys {unknown}", expected + f" (known: {sorted(BASE_CONFIG)})")
    swin = data.get("swin")
    if swin is not None and (not isinstance(swin, dict) or sorted(swin) != sorted(SWIN_KEYS)):
        raise CheckpointError(path, f'"swin" must be an object with exactly the keys {list(SWIN_KEYS)}',
                              expected)
    if swin is None and data.get("backbone", BASE_CONFIG["backbone"]) not in SWIN_BACKBONES:
        raise CheckpointError(path, f"backbone {data.get('backbone')!r} is not supported",
                              f"one of {sorted(SWIN_BACKBONES)} or a \"swin\" object (ResNet backbones "
                              "would download weights and are not supported)")
    if data.get("hidden_dim", 256) != 256:
        raise CheckpointError(path, "hidden_dim must be 256 (groundingdino's text and image features "
                              "meet in a 256-wide space)", expected)
    return full_config(data)
