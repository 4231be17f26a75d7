"""GroundingDINO test models built in code, never downloaded.

- a deterministic BERT vocabulary laid out like bert-base-uncased ([CLS]=101, [SEP]=102, "."=1012,
  "?"=1029: transformers' GroundingDINO hard-codes these ids), with the words the tests use;
- a tiny GroundingDINO (.pth in the release container layout + its JSON config) and tiny BERT folder;
- full-size random-weight ``groundingdino_swint_ogc.pth`` and ``bert-base-uncased`` (cached);
- a tiny transformers-format GroundingDINO folder.

Everything is built from the libraries' own classes with fixed seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devkit.model_cache import cached_build

# Common object names, words of the benchmark instructions and a few descriptive words.
WORDS = """
a an the of on in at to and or with for from by under over near left right top bottom front back
behind inside beside between above below next middle center small large big little tall short long
red green blue yellow white black brown gray grey orange pink purple gold silver wooden glass metal
person people man woman child boy girl baby face hand hair eye head arm leg foot shirt shirts pants
dress dresses hat cap shoe shoes bag backpack handbag umbrella tie suitcase glasses watch jacket
cat dog bird horse sheep cow elephant bear zebra giraffe fish mouse rabbit teddy toy doll
car bicycle bike motorcycle bus train truck boat airplane plane traffic light sign stop parking
bench chair chairs sofa couch bed pillow blanket table tables desk shelf shelves cabinet drawer
door window curtain curtains wall walls floor ceiling rug carpet mirror picture painting frame
lamp light lights candle clock vase plant plants flower flowers flowerpot pot tree grass leaf
tv television screen monitor laptop computer keyboard phone remote speaker speakers camera radio
cup cups mug glass bottle bottles wine plate plates bowl fork knife spoon food meal cake pizza
sandwich banana apple orange fruit bread sink toilet bathtub shower towel oven microwave fridge
refrigerator stove kettle book books paper documents letters pen pencil blackboard whiteboard
board box basket bin trash can machine washing printer fan heater vent collar tag ball kite
frisbee skateboard surfboard skis racket sports bat glove toothbrush scissors hair drier
building house roof road street sidewalk sky cloud sun mountain river sea water sand snow
room kitchen bedroom bathroom office library hotel living dining meeting study
object objects item items thing things device devices furniture decoration clothing tool
supplies material wrapper candy drink photos movies sound audio music
""".split()
SUBWORDS = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + ["##s", "##es", "##ed", "##ing", "##er", "##ly"]

TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=512)
TINY_GDINO_JSON = {
    "backbone": "swin_T_224_1k",
    "swin": {"embed_dim": 32, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8], "window_size": 7},
    "enc_layers": 1, "dec_layers": 1, "dim_feedforward": 64, "num_queries": 50,
}


# --- vocabularies and BERT folders ----------------------------------------------------------


def bert_vocab(size: int | None = None) -> list[str]:
    """bert-base-uncased's layout for ids 0..1066, then WORDS and subwords, padded to ``size``."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 999 - len(vocab))]
    vocab += [chr(c) for c in range(33, 65)] + [chr(c) for c in range(91, 127)]  # "." = 1012, "?" = 1029
    for word in WORDS + SUBWORDS:
        if word not in vocab:
            vocab.append(word)
    if size is not None:
        n = 994
        while len(vocab) < size:
            vocab.append(f"[unused{n}]")
            n += 1
    return vocab


def write_tokenizer(folder: Path, vocab: list[str]) -> None:
    """vocab.txt + tokenizer_config.json: what transformers 4.57 and 5 both read as BertTokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 512}),
        encoding="utf-8")


def build_bert_folder(folder: Path, vocab_size: int | None = None, seed: int = 0, **config: Any) -> Path:
    """An HF BERT folder (config, random weights, tokenizer) from BertConfig(**config)."""
    import torch
    from transformers import BertConfig, BertModel

    vocab = bert_vocab(vocab_size)
    write_tokenizer(folder, vocab)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=len(vocab), **config)).save_pretrained(str(folder))
    return folder


# --- GroundingDINO checkpoints --------------------------------------------------------------


def release_state_dict(model: Any, prefix: str = "module.") -> dict[str, Any]:
    """The model's tensors as the released .pth files hold them, plus their two unused keys."""
    import torch

    sd = {prefix + k: v for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    sd[prefix + "label_enc.weight"] = torch.randn(2001, 256, generator=g)
    sd[prefix + "bert.embeddings.position_ids"] = torch.arange(512)[None]
    return sd


def build_gdino_model(cfg: dict[str, Any], bert_folder: Path, seed: int = 0) -> Any:
    import torch

    from .gdino_reference import build_model

    torch.manual_seed(seed)
    return build_model(cfg, bert_folder).eval()


def build_tiny_gdino(folder: str | Path) -> tuple[Path, Path]:
    """``folder/tiny_gdino.pth`` (+ ``tiny_gdino.json``) and its BERT folder; seconds to build."""
    import torch

    from cielr_core.perception import gdino_configs

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bert = build_bert_folder(folder / "bert-tiny", **TINY_BERT)
    model = build_gdino_model(gdino_configs.full_config(TINY_GDINO_JSON), bert)
    weights = folder / "tiny_gdino.pth"
    torch.save({"model": release_state_dict(model)}, weights)
    weights.with_suffix(".json").write_text(json.dumps(TINY_GDINO_JSON, indent=1), encoding="utf-8")
    return weights, bert


def _sources() -> tuple[Path, ...]:
    """The code that writes the full-size files: this module and the groundingdino adapter."""
    return Path(__file__), Path(__file__).with_name("gdino_compat.py")


def build_full_bert(cache: Path) -> Path:
    """``bert-base-uncased``: BertConfig() sizes, 30522 deterministic tokens, random weights; cached."""
    def build(out: Path) -> None:
        build_bert_folder(out / "bert-base-uncased", vocab_size=30522)

    return cached_build(cache, "bert-base", _sources(), build) / "bert-base-uncased"


# The released checkpoints' files and the configs groundingdino ships for them (library code).
RELEASES = {
    "SwinT-OGC": ("groundingdino_swint_ogc.pth", "GroundingDINO_SwinT_OGC.py", "module."),
    "SwinB-COGCOOR": ("groundingdino_swinb_cogcoor.pth", "GroundingDINO_SwinB_cfg.py", ""),
}


def build_release_model(name: str, bert_folder: Path, seed: int = 0) -> Any:
    """A released architecture from groundingdino's own bundled config and build function.

    Independent of the loader's architecture table, so a wrong table cannot agree with itself.
    """
    import groundingdino
    import torch
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    from .gdino_compat import adapt_warper, local_text_encoder

    args = SLConfig.fromfile(str(Path(groundingdino.__file__).parent / "config" / RELEASES[name][1]))
    torch.manual_seed(seed)
    with local_text_encoder(bert_folder):
        model = build_model(args)
    adapt_warper(model.bert)
    return model.eval()


def save_release(model: Any, path: Path, name: str) -> Path:
    """``{"model": state_dict}`` with the release's key prefix and its two unused keys."""
    import torch

    torch.save({"model": release_state_dict(model, RELEASES[name][2])}, path)
    return path


def build_full_release(cache: Path, name: str) -> Path:
    """``groundingdino_swint_ogc.pth`` ("module." prefix) or ``groundingdino_swinb_cogcoor.pth``
    (no prefix), full size with random weights, beside a full-size bert-base-uncased; cached."""
    bert = build_full_bert(cache)
    file = RELEASES[name][0]

    def build(out: Path) -> None:
        save_release(build_release_model(name, bert), out / file, name)

    return cached_build(cache, f"gdino-{name.lower()}", _sources(), build) / file


# --- transformers-format GroundingDINO ------------------------------------------------------


def build_tiny_hf_gdino(folder: str | Path, bert_folder: Path) -> Path:
    """A tiny GroundingDinoForObjectDetection folder with its processor (images at 320-512 px)."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = Path(folder)
    backbone = SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], window_size=7,
                          out_indices=[2, 3, 4])
    text = BertConfig.from_pretrained(str(bert_folder), local_files_only=True)
    # Two decoder layers: transformers' weight-tying rule for the box heads expects more than one. At most
    # 20 objects a photo: the tests' scenes, and the LLM prompts that list them, stay short.
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, num_queries=20, encoder_layers=1,
                                 decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(bert_folder), local_files_only=True)
    images = GroundingDinoImageProcessor(size={"shortest_edge": 320, "longest_edge": 512})
    GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder


# --- transformers 4 vs 5 (the released-checkpoint path converts to either version's layout) ---

EQUALITY_LABELS = ["tv", "floor lamp", "speaker", "teddy bear", "sofa", "zebra"]


def reference_outputs(weights: str, bert: str, image: str, out: str) -> None:
    """Run the tiny detector once and save raw outputs; the equality test calls this in the venv
    (transformers 5) and in a subprocess with transformers 4.57 first on the path."""
    import numpy as np
    import transformers
    from PIL import Image

    from cielr_core.perception.detector import load_grounding_dino, make_caption
    from cielr_core.perception.gdino_convert import layout_of

    detector = load_grounding_dino(weights, bert)
    detector.short_side, detector.long_side = 320, 480
    with Image.open(image) as im:
        rgb = np.asarray(im.convert("RGB"))
    logits, boxes = detector._forward(detector._prepare_image(rgb), make_caption(EQUALITY_LABELS))
    found = detector.detect(rgb, EQUALITY_LABELS, box_threshold=0.05, text_threshold=0.05)
    np.savez(out, version=np.array(transformers.__version__),
             swin_attention=np.array(layout_of(detector.model.state_dict()).swin_out),
             logits=logits.numpy(), boxes=boxes.numpy(), det_boxes=found.boxes, det_scores=found.scores,
             det_labels=np.array(found.labels, dtype=str))
