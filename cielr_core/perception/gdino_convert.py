"""Released GroundingDINO checkpoints run by transformers' ``GroundingDinoForObjectDetection``.

The release files hold the tensors of groundingdino's own model. Here they are renamed (and the
fused q/k/v matrices split) into transformers' layout in memory, and loaded strictly: every tensor
of the transformers model comes from the file, every tensor of the file is used, shapes match, and
tensors transformers ties together must be equal in the file. The renaming is a table of
bidirectional templates, so a missing tensor is reported by its name in the file.

transformers renamed some modules between 4.x and 5.x (the Swin backbone gained a ``swin.`` level,
its attention became ``q_proj``/``k_proj``/``v_proj``/``o_proj``); the names are read from the model
that was built, so both work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

# groundingdino's BertModelWarper keeps BERT's pooler, which GroundingDINO never calls; transformers
# builds the text backbone without one. The file must hold it (it is part of the release format),
# and its shape is checked, but it is not loaded.
POOLER_KEYS = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")
# transformers' GroundingDINO hard-codes these token ids ([CLS], [SEP], ".", "?") for its phrase masks.
SPECIAL_TOKENS = {"[CLS]": 101, "[SEP]": 102, ".": 1012, "?": 1029}

_PLACEHOLDERS = {"i": r"(?P<i>\d+)", "j": r"(?P<j>\d+)", "p": r"(?P<p>weight|bias)", "rest": r"(?P<rest>.+)"}


class Template:
    """A key pattern with ``{i}``/``{j}`` (numbers), ``{p}`` (weight/bias) and ``{rest}`` fields."""

    def __init__(self, text: str):
        self.text = text
        parts = re.split(r"\{(\w+)\}", text)
        regex = "".join(_PLACEHOLDERS[part] if n % 2 else re.escape(part) for n, part in enumerate(parts))
        self.regex = re.compile(f"^{regex}$")

    def match(self, key: str) -> dict[str, str] | None:
        m = self.regex.match(key)
        return m.groupdict() if m else None

    def fill(self, fields: Mapping[str, str]) -> str:
        return self.text.format(**fields)


@dataclass(frozen=True)
class Rule:
    """One file key -> one model key, or a fused q/k/v tensor -> three model keys (split on dim 0)."""

    source: Template
    targets: tuple[Template, ...]


def _rule(source: str, *targets: str) -> Rule:
    return Rule(Template(source), tuple(Template(t) for t in targets))


@dataclass(frozen=True)
class Layout:
    """Where transformers' installed version puts the modules whose names changed."""

    swin: str  # prefix of the Swin model (embeddings, encoder)
    swin_norms: str  # prefix of the backbone's per-stage output norms
    swin_qkv: tuple[str, str, str]
    swin_out: str
    swin_table: str
    swin_index: str
    swin_fc1: str
    swin_fc2: str
    fused_mha: bool  # nn.MultiheadAttention (in_proj_weight) rather than query/key/value


def layout_of(model_keys: Iterable[str]) -> Layout:
    keys = set(model_keys)
    root = "model.backbone.conv_encoder.model."
    swin = root + "swin." if f"{root}swin.embeddings.norm.weight" in keys else root
    new_attention = any(k.endswith(".attention.q_proj.weight") for k in keys)
    fused = "model.decoder.layers.0.self_attn.in_proj_weight" in keys
    if new_attention:  # transformers 5
        return Layout(swin, root + "hidden_states_norms.",
                      ("attention.q_proj", "attention.k_proj", "attention.v_proj"), "attention.o_proj",
                      "attention.relative_position_bias.relative_position_bias_table",
                      "attention.relative_position_bias.relative_position_index", "mlp.fc1", "mlp.fc2", fused)
    return Layout(swin, root + "hidden_states_norms.",
                  ("attention.self.query", "attention.self.key", "attention.self.value"),
                  "attention.output.dense",
                  "attention.self.relative_position_bias_table", "attention.self.relative_position_index",
                  "intermediate.dense", "output.dense", fused)


def _mha(source: str, target: str, fused: bool) -> list[Rule]:
    """nn.MultiheadAttention's tensors (``source``) as the model's attention module (``target``)."""
    if fused:
        return [_rule(f"{source}.in_proj_{{p}}", f"{target}.in_proj_{{p}}"),
                _rule(f"{source}.out_proj.{{p}}", f"{target}.out_proj.{{p}}")]
    return [_rule(f"{source}.in_proj_{{p}}", *(f"{target}.{n}.{{p}}" for n in ("query", "key", "value"))),
            _rule(f"{source}.out_proj.{{p}}", f"{target}.out_proj.{{p}}")]


_DEFORMABLE = ("sampling_offsets", "attention_weights", "value_proj", "output_proj")


def rules_for(layout: Layout, interm_indices: Sequence[int]) -> list[Rule]:
    """groundingdino's key names -> transformers' key names."""
    L, s = layout, layout.swin
    block_src, block_dst = "backbone.0.layers.{i}.blocks.{j}.", f"{s}encoder.layers.{{i}}.blocks.{{j}}."
    rules = [
        _rule("backbone.0.patch_embed.proj.{p}", f"{s}embeddings.patch_embeddings.projection.{{p}}"),
        _rule("backbone.0.patch_embed.norm.{p}", f"{s}embeddings.norm.{{p}}"),
        _rule(block_src + "norm1.{p}", block_dst + "layernorm_before.{p}"),
        _rule(block_src + "norm2.{p}", block_dst + "layernorm_after.{p}"),
        _rule(block_src + "attn.qkv.{p}", *(block_dst + name + ".{p}" for name in L.swin_qkv)),
        _rule(block_src + "attn.proj.{p}", block_dst + L.swin_out + ".{p}"),
        _rule(block_src + "attn.relative_position_bias_table", block_dst + L.swin_table),
        _rule(block_src + "attn.relative_position_index", block_dst + L.swin_index),
        _rule(block_src + "mlp.fc1.{p}", block_dst + L.swin_fc1 + ".{p}"),
        _rule(block_src + "mlp.fc2.{p}", block_dst + L.swin_fc2 + ".{p}"),
        _rule("backbone.0.layers.{i}.downsample.reduction.weight",
              f"{s}encoder.layers.{{i}}.downsample.reduction.weight"),
        _rule("backbone.0.layers.{i}.downsample.norm.{p}", f"{s}encoder.layers.{{i}}.downsample.norm.{{p}}"),
    ]
    # groundingdino numbers its output norms by stage index from 0, transformers names stages from 1
    rules += [_rule(f"backbone.0.norm{k}.{{p}}", f"{L.swin_norms}stage{k + 1}.{{p}}") for k in interm_indices]
    rules += [
        _rule("input_proj.{i}.{j}.{p}", "model.input_proj_vision.{i}.{j}.{p}"),
        _rule("feat_map.{p}", "model.text_projection.{p}"),
        _rule("transformer.level_embed", "model.level_embed"),
        _rule("transformer.tgt_embed.weight", "model.query_position_embeddings.weight"),
        _rule("transformer.enc_output.{p}", "model.enc_output.{p}"),
        _rule("transformer.enc_output_norm.{p}", "model.enc_output_norm.{p}"),
        _rule("transformer.enc_out_bbox_embed.layers.{i}.{p}",
              "model.encoder_output_bbox_embed.layers.{i}.{p}"),
        _rule("bbox_embed.{i}.layers.{j}.{p}", "bbox_embed.{i}.layers.{j}.{p}"),
        _rule("transformer.decoder.bbox_embed.{i}.layers.{j}.{p}",
              "model.decoder.bbox_embed.{i}.layers.{j}.{p}"),
        _rule("transformer.decoder.ref_point_head.layers.{i}.{p}",
              "model.decoder.reference_points_head.layers.{i}.{p}"),
        _rule("transformer.decoder.norm.{p}", "model.decoder.layer_norm.{p}"),
    ]
    enc, dst = "transformer.encoder.layers.{i}.", "model.encoder.layers.{i}.deformable_layer."
    rules += [_rule(f"{enc}self_attn.{n}.{{p}}", f"{dst}self_attn.{n}.{{p}}") for n in _DEFORMABLE]
    rules += [_rule(enc + a + ".{p}", dst + b + ".{p}") for a, b in (
        ("norm1", "self_attn_layer_norm"), ("linear1", "fc1"), ("linear2", "fc2"),
        ("norm2", "final_layer_norm"))]
    text, dst = "transformer.encoder.text_layers.{i}.", "model.encoder.layers.{i}.text_enhancer_layer."
    rules += _mha(text + "self_attn", dst + "self_attn", L.fused_mha)
    rules += [_rule(text + a + ".{p}", dst + b + ".{p}") for a, b in (
        ("linear1", "fc1"), ("linear2", "fc2"), ("norm1", "layer_norm_before"),
        ("norm2", "layer_norm_after"))]
    fuse, dst = "transformer.encoder.fusion_layers.{i}.", "model.encoder.layers.{i}.fusion_layer."
    rules += [_rule(fuse + "gamma_v", dst + "vision_param"), _rule(fuse + "gamma_l", dst + "text_param"),
              _rule(fuse + "layer_norm_v.{p}", dst + "layer_norm_vision.{p}"),
              _rule(fuse + "layer_norm_l.{p}", dst + "layer_norm_text.{p}")]
    rules += [_rule(f"{fuse}attn.{a}.{{p}}", f"{dst}attn.{b}.{{p}}") for a, b in (
        ("v_proj", "vision_proj"), ("l_proj", "text_proj"), ("values_v_proj", "values_vision_proj"),
        ("values_l_proj", "values_text_proj"), ("out_v_proj", "out_vision_proj"),
        ("out_l_proj", "out_text_proj"))]
    dec, dst = "transformer.decoder.layers.{i}.", "model.decoder.layers.{i}."
    rules += [_rule(f"{dec}cross_attn.{n}.{{p}}", f"{dst}encoder_attn.{n}.{{p}}") for n in _DEFORMABLE]
    rules += _mha(dec + "ca_text", dst + "encoder_attn_text", L.fused_mha)
    rules += _mha(dec + "self_attn", dst + "self_attn", L.fused_mha)
    rules += [_rule(dec + a + ".{p}", dst + b + ".{p}") for a, b in (
        ("norm1", "encoder_attn_layer_norm"), ("catext_norm", "encoder_attn_text_layer_norm"),
        ("norm2", "self_attn_layer_norm"), ("linear1", "fc1"), ("linear2", "fc2"),
        ("norm3", "final_layer_norm"))]
    rules.append(_rule("bert.{rest}", "model.text_backbone.{rest}"))  # last: after the pooler is set aside
    return rules


# --- the config ---------------------------------------------------------------------------------


def unsupported(cfg: Mapping[str, Any]) -> list[str]:
    """Options of a groundingdino config that transformers' GroundingDINO cannot represent."""
    required = {"two_stage_type": "standard", "num_patterns": 0, "use_text_enhancer": True,
                "use_fusion_layer": True, "use_text_cross_attention": True, "sub_sentence_present": True,
                "pre_norm": False, "position_embedding": "sine", "query_dim": 4,
                "two_stage_bbox_embed_share": False}
    problems = [f"{k}={cfg.get(k)!r} (only {v!r})" for k, v in required.items() if cfg.get(k) != v]
    if cfg.get("pe_temperatureH") != cfg.get("pe_temperatureW"):
        problems.append("pe_temperatureH and pe_temperatureW must be equal")
    if cfg.get("transformer_activation") not in ("relu", "gelu"):
        problems.append(f"transformer_activation={cfg.get('transformer_activation')!r} (only relu or gelu)")
    return problems


def hf_config(cfg: Mapping[str, Any], text_config: Any, swin: Mapping[str, Any]) -> Any:
    """transformers' GroundingDinoConfig for a groundingdino config dict and a BertConfig."""
    from transformers import GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(embed_dim=swin["embed_dim"], depths=list(swin["depths"]),
                          num_heads=list(swin["num_heads"]), window_size=swin["window_size"],
                          drop_path_rate=0.0,
                          out_indices=[k + 1 for k in cfg["return_interm_indices"]])
    layers = cfg["dec_layers"]
    return GroundingDinoConfig(
        backbone_config=backbone, text_config=text_config, num_queries=cfg["num_queries"],
        encoder_layers=cfg["enc_layers"], decoder_layers=layers, encoder_ffn_dim=cfg["dim_feedforward"],
        decoder_ffn_dim=cfg["dim_feedforward"], encoder_attention_heads=cfg["nheads"],
        decoder_attention_heads=cfg["nheads"], d_model=cfg["hidden_dim"],
        activation_function=cfg["transformer_activation"], dropout=0.0,
        num_feature_levels=cfg["num_feature_levels"], encoder_n_points=cfg["enc_n_points"],
        decoder_n_points=cfg["dec_n_points"], two_stage=True, max_text_len=cfg["max_text_len"],
        embedding_init_target=cfg["embed_init_tgt"], query_dim=cfg["query_dim"],
        # one decoder layer shares nothing; transformers' tying rule needs a second one to tie to
        decoder_bbox_embed_share=bool(cfg["dec_pred_bbox_embed_share"]) and layers > 1,
        two_stage_bbox_embed_share=False, positional_embedding_temperature=cfg["pe_temperatureH"],
        position_embedding_type="sine", text_enhancer_dropout=0.0, fusion_dropout=0.0, fusion_droppath=0.0)


# --- converting and loading ---------------------------------------------------------------------


@dataclass
class Conversion:
    tensors: dict[str, torch.Tensor]  # model key -> tensor
    sources: dict[str, list[str]]  # model key -> file keys that filled it
    derived: dict[str, tuple[str, torch.Tensor]]  # model buffer -> (file key, tensor)
    unexpected: list[str]  # file keys no rule or model key takes
    split: set[str]  # model keys that are a third of a fused q/k/v tensor


def convert(sd: Mapping[str, torch.Tensor], rules: Sequence[Rule], model_keys: Iterable[str],
            buffers: Iterable[str] = ()) -> Conversion:
    """Rename (and split) the file's tensors; nothing is checked against shapes yet."""
    keys, buffers = set(model_keys), set(buffers)
    out = Conversion({}, {}, {}, [], set())
    for key, tensor in sd.items():
        if key in POOLER_KEYS:
            continue
        rule = next((r for r in rules if r.source.match(key) is not None), None)
        if rule is None:
            out.unexpected.append(key)
            continue
        fields = rule.source.match(key)
        names = [t.fill(fields) for t in rule.targets]
        if len(names) == 1 and names[0] in buffers:
            out.derived[names[0]] = (key, tensor)  # a table the model computes itself: compared, not loaded
            continue
        if not all(n in keys for n in names):
            out.unexpected.append(key)
            continue
        if len(names) == 3:
            out.split.update(names)
            # a first dimension that is not a multiple of 3 is reported as a wrong shape
            parts = list(tensor.chunk(3, dim=0)) if tensor.shape[0] % 3 == 0 else [tensor] * 3
        else:
            parts = [tensor]
        for name, part in zip(names, parts):
            out.tensors[name] = part
            out.sources.setdefault(name, []).append(key)
    return out


def source_name(model_key: str, rules: Sequence[Rule]) -> str:
    """The file key a model key comes from (the model key itself when no rule produces it)."""
    for rule in rules:
        for target in rule.targets:
            fields = target.match(model_key)
            if fields is not None:
                return rule.source.fill(fields)
    return model_key


def defaults_for_unused(model: torch.nn.Module, layout: Layout) -> dict[str, torch.Tensor]:
    """transformers' Swin keeps a final LayerNorm its backbone never applies; it has no tensor in
    the file, so it is set to the identity (its value cannot change any output)."""
    norm = f"{layout.swin}layernorm."
    own = model.state_dict()
    out = {}
    if norm + "weight" in own:
        out[norm + "weight"] = torch.ones_like(own[norm + "weight"])
        out[norm + "bias"] = torch.zeros_like(own[norm + "bias"])
    return out


def _listing(keys: Sequence[str], what: str) -> str:
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return f"{len(keys)} {what}: {', '.join(keys[:4])}{more}"


def load_converted(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: Path, name: str,
                   interm_indices: Sequence[int]) -> None:
    """Fill ``model`` from the file's state dict (prefix and known extra keys already removed)."""
    own = model.state_dict()
    layout = layout_of(own)
    rules = rules_for(layout, interm_indices)
    buffers = dict(model.named_buffers())
    conv = convert(sd, rules, own, buffers)
    fixed = defaults_for_unused(model, layout)

    fixed.update({k: own[k] for k in conv.derived if k in own})  # saved by transformers 4, computed
    missing = sorted({source_name(k, rules) for k in own if k not in conv.tensors and k not in fixed})
    missing += [k for k in POOLER_KEYS if k not in sd]
    unexpected = sorted(conv.unexpected)
    wrong, unequal = [], []
    for key, tensor in conv.tensors.items():
        src = conv.sources[key][0]
        if tuple(tensor.shape) != tuple(own[key].shape):
            shape = tuple(own[key].shape)
            expected = (3 * shape[0], *shape[1:]) if key in conv.split else shape
            wrong.append(f"{src} (file {tuple(sd[src].shape)}, model {expected})")
    for key, (src, tensor) in conv.derived.items():
        if tensor.numel() != buffers[key].numel() or not torch.equal(tensor.reshape(-1).to(buffers[key]),
                                                                     buffers[key].reshape(-1)):
            unequal.append(f"{src} (a fixed index table that differs from the one its window size gives)")
    if not wrong:
        unequal += _tied_conflicts(own, conv)
    if "bert.pooler.dense.weight" in sd and not wrong:
        hidden = own["model.text_backbone.embeddings.word_embeddings.weight"].shape[1]
        for key, shape in zip(POOLER_KEYS, ((hidden, hidden), (hidden,))):
            if key in sd and tuple(sd[key].shape) != shape:
                wrong.append(f"{key} (file {tuple(sd[key].shape)}, model {shape})")
    wrong = sorted(set(wrong))
    problems = [_listing(keys, what) for what, keys in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong), ("inconsistent", unequal))
        if keys]
    if problems:
        raise CheckpointError(path, f"its tensors do not match the {name} architecture "
                                    f"({'; '.join(problems)})",
                              f"a complete GroundingDINO {name} checkpoint")
    model.load_state_dict({**conv.tensors, **fixed}, strict=True)


def _tied_conflicts(own: Mapping[str, torch.Tensor], conv: Conversion) -> list[str]:
    """Model keys that share one tensor (tied heads) must get equal tensors from the file."""
    groups: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    for key, tensor in own.items():
        if tensor.numel():
            groups.setdefault((tensor.data_ptr(), tuple(tensor.shape)), []).append(key)
    out = []
    for keys in groups.values():
        first = keys[0]
        for other in keys[1:]:
            if first in conv.tensors and other in conv.tensors and \
                    not torch.equal(conv.tensors[first], conv.tensors[other]):
                out.append(f"{conv.sources[other][0]} differs from {conv.sources[first][0]}, which "
                           "this architecture shares with it")
    return out


def check_special_tokens(tokenizer: Any, folder: Path, expected: str) -> None:
    """transformers' GroundingDINO finds phrase boundaries by fixed token ids; the vocabulary must agree."""
    found = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))))
    if found != SPECIAL_TOKENS:
        raise CheckpointError(folder, f"its vocabulary puts {found} where bert-base-uncased has "
                                      f"{SPECIAL_TOKENS}", expected)
