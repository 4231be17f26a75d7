"""GroundingDINO detector: checkpoint layouts, architecture table, label batching, boxes."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cielr_core.errors import CheckpointError, InputError
from cielr_core.perception import gdino_configs, gdino_convert
from cielr_core.perception.detections import Detections
from cielr_core.perception.detector import (
    KNOWN_EXTRA_KEYS,
    detections_from_logits,
    load_grounding_dino,
    make_caption,
    pack_captions,
    token_spans,
)
from cielr_core.progress import Progress
from devkit import gdino_models as gm
from devkit.gdino_reference import (
    ReferenceDetector,
    assert_same_outputs,
    load_reference,
    raw_outputs,
)

REPO = Path(__file__).resolve().parents[1]
TRANSFORMERS4 = Path(os.environ.get("CIELR_TRANSFORMERS4",
                                    Path.home() / ".cache" / "cielr" / "transformers4"))


@pytest.fixture(scope="module")
def det(tiny_gdino):
    """The tiny detector at a small working size, so each forward pass takes a fraction of a second."""
    detector = load_grounding_dino(*tiny_gdino)
    detector.short_side, detector.long_side = 224, 320
    return detector


@pytest.fixture(scope="module")
def tiny_sd(tiny_gdino):
    return torch.load(tiny_gdino[0], weights_only=True)["model"]


@contextlib.contextmanager
def counting(module: torch.nn.Module):
    """Counts forward calls of the whole model."""
    calls: list[int] = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def copy_tiny(tiny_gdino, folder: Path, sd=None, with_json: bool = True, name: str = "model.pth") -> Path:
    """The tiny checkpoint (or a changed state dict) in a new folder, with or without its JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / name
    if sd is None:
        shutil.copy(tiny_gdino[0], weights)
    else:
        torch.save({"model": sd}, weights)
    if with_json:
        shutil.copy(tiny_gdino[0].with_suffix(".json"), weights.with_suffix(".json"))
    return weights


def assert_inside(found: Detections, width: int, height: int) -> None:
    assert found.boxes.dtype == np.float32 and found.boxes.shape == (len(found), 4)
    b = found.boxes
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 1] >= 0)
    assert np.all(b[:, 2] <= width) and np.all(b[:, 3] <= height)
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])


# --- labels, captions and the shared post-processing ----------------------------------------


def test_caption_layout_and_token_spans(det):
    caption = make_caption(["tv", "floor lamp", "mr. potato"])
    assert caption.text == "tv . floor lamp . mr potato ."  # a "." inside a label would split it
    spans = token_spans(det.tokenizer, caption, 256)
    ids = det.tokenizer(caption.text)["input_ids"]
    words = det.tokenizer.convert_ids_to_tokens(ids)
    assert [[words[i] for i in s] for s in spans][:2] == [["tv"], ["floor", "lamp"]]
    assert len(spans[2]) >= 2  # "mr potato": unknown words still have tokens


def test_pack_captions_respects_token_limit(det):
    labels = [f"{a} {b}" for a in ("red", "blue", "green", "white", "black") for b in gm.WORDS[100:130]]
    captions = pack_captions(labels, det._count_tokens, 256)
    assert len(captions) > 1
    assert [label for c in captions for label in c.labels] == labels  # order kept, nothing lost
    for caption in captions:
        assert len(det.tokenizer(caption.text)["input_ids"]) <= 256
        assert all(len(s) == 2 for s in token_spans(det.tokenizer, caption, 256))


def test_detections_from_logits_assigns_best_label_and_maps_boxes():
    # tokens: [CLS] cup . floor lamp . [SEP]  -> spans cup=[1], floor lamp=[3, 4]
    logits = torch.full((3, 256), -float("inf"))
    logits[:, :7] = -10.0
    logits[0, 1] = 3.0  # query 0: cup
    logits[1, 4] = 2.0  # query 1: "lamp" token of floor lamp (max over the label's tokens)
    logits[1, 1] = 0.5
    logits[2, 2] = 5.0  # query 2: only the "." token is high -> no label passes text_threshold
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.1, 0.1]])
    found = detections_from_logits(logits, boxes, [[1], [3, 4]], ["cup", "floor lamp"], 0.3, 0.25,
                                   window=(100, 50, 300, 250))
    assert found.labels == ["cup", "floor lamp"]
    np.testing.assert_allclose(found.scores, torch.sigmoid(torch.tensor([3.0, 2.0])).numpy(), rtol=1e-6)
    # cup: centre (200, 150) in the full image, 40 x 80; floor lamp: clipped to the window's corner
    np.testing.assert_allclose(found.boxes[0], [180, 110, 220, 190], atol=1e-4)
    np.testing.assert_allclose(found.boxes[1], [100, 50, 160, 110], atol=1e-4)  # (80, 30) clipped
    none = detections_from_logits(logits, boxes, [[1], [3, 4]], ["cup", "floor lamp"], 0.999, 0.25,
                                  window=(0, 0, 10, 10))
    assert len(none) == 0


# --- architecture table and JSON configs ----------------------------------------------------


@pytest.fixture(scope="module")
def release_sds(tiny_gdino):
    """Real SwinT-OGC and SwinB-COGCOOR models from groundingdino's bundled configs (tiny BERT)."""
    out = {}
    for name in gm.RELEASES:
        model = gm.build_release_model(name, tiny_gdino[1])
        out[name] = {k: torch.empty(v.shape, device="meta") for k, v in model.state_dict().items()}
        del model
    return out


def test_table_matches_the_configs_groundingdino_ships():
    import groundingdino
    from groundingdino.util.slconfig import SLConfig

    for name, (_, cfg_file, _) in gm.RELEASES.items():
        cfg_path = Path(groundingdino.__file__).parent / "config" / cfg_file
        shipped = SLConfig.fromfile(str(cfg_path))._cfg_dict.to_dict()
        ours = gdino_configs.full_config(gdino_configs.ARCHITECTURES[name]["config"])
        training_only = {"use_checkpoint", "use_transformer_ckpt"}
        assert {k: v for k, v in shipped.items() if k not in training_only} == \
               {k: v for k, v in ours.items() if k not in training_only}


def test_architecture_recognised_from_shapes(release_sds, tiny_sd):
    assert gdino_configs.recognise(release_sds["SwinT-OGC"])[0] == "SwinT-OGC"
    assert gdino_configs.recognise(release_sds["SwinB-COGCOOR"])[0] == "SwinB-COGCOOR"
    sig_t = gdino_configs.signature(release_sds["SwinT-OGC"])
    sig_b = gdino_configs.signature(release_sds["SwinB-COGCOOR"])
    assert (sig_t["embed_dim"], sig_t["depths"], sig_t["window_size"]) == (96, [2, 2, 6, 2], 7)
    assert (sig_b["embed_dim"], sig_b["depths"], sig_b["window_size"]) == (128, [2, 2, 18, 2], 12)
    assert gdino_configs.recognise({k.removeprefix("module."): v for k, v in tiny_sd.items()}) is None
    assert gdino_configs.recognise({"foo.weight": torch.zeros(1)}) is None


def test_unknown_architecture_without_json_is_refused(tiny_gdino, tmp_path):
    weights = copy_tiny(tiny_gdino, tmp_path, with_json=False)
    with pytest.raises(CheckpointError) as err:
        load_grounding_dino(weights, tiny_gdino[1])
    msg = str(err.value)
    assert str(weights) in msg and "SwinT-OGC" in msg and "SwinB-COGCOOR" in msg and ".json" in msg
    assert "embed_dim 32" in msg


def test_json_config_beside_weights_or_config_json(tiny_gdino, tmp_path):
    d = load_grounding_dino(*tiny_gdino)
    assert d.name == "JSON config tiny_gdino.json"
    assert d.model.config.num_queries == gm.TINY_GDINO_JSON["num_queries"]
    assert d.model.config.backbone_config.embed_dim == gm.TINY_GDINO_JSON["swin"]["embed_dim"]
    weights = copy_tiny(tiny_gdino, tmp_path, with_json=False)
    (tmp_path / "config.json").write_text(json.dumps(gm.TINY_GDINO_JSON))
    assert load_grounding_dino(weights, tiny_gdino[1]).name == "JSON config config.json"


def test_python_config_in_model_folder_is_never_run(tiny_gdino, tmp_path):
    weights = copy_tiny(tiny_gdino, tmp_path)
    marker = tmp_path / "ran"
    for name in ("model.py", "config.py", "GroundingDINO_SwinT_OGC.py"):
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    load_grounding_dino(weights, tiny_gdino[1])
    assert not marker.exists()


@pytest.mark.parametrize("change,match", [
    ({"enc_layers": 2}, "enc_layers: file 1 vs config 2"),
    ({"num_queries": 900}, "num_queries"),
    ({"enc_layer": 1}, "unknown keys"),
    ({"backbone": "resnet50", "swin": None}, "not supported"),
    ({"swin": {"embed_dim": 32}}, "swin"),
])
def test_bad_json_config(tiny_gdino, tmp_path, change, match):
    weights = copy_tiny(tiny_gdino, tmp_path, with_json=False)
    cfg = {**gm.TINY_GDINO_JSON, **change}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    weights.with_suffix(".json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=match):
        load_grounding_dino(weights, tiny_gdino[1])


# --- container layout, prefixes, strict loading ---------------------------------------------


def test_release_layout_loads_strictly_with_the_files_weights(tiny_gdino, tiny_sd):
    assert all(k.startswith("module.") for k in tiny_sd)
    assert all("module." + k in tiny_sd for k in KNOWN_EXTRA_KEYS)
    d = load_grounding_dino(*tiny_gdino)
    own = d.model.state_dict()
    swin = gdino_convert.layout_of(own)
    block = f"{swin.swin}encoder.layers.0.blocks.0."
    pairs = {
        f"{swin.swin}embeddings.patch_embeddings.projection.weight": "backbone.0.patch_embed.proj.weight",
        "model.query_position_embeddings.weight": "transformer.tgt_embed.weight",
        "model.text_projection.weight": "feat_map.weight",
        "model.text_backbone.embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
        "model.text_backbone.encoder.layer.0.attention.self.query.weight":
            "bert.encoder.layer.0.attention.self.query.weight",
        f"{swin.swin_norms}stage2.weight": "backbone.0.norm1.weight",  # stage numbering differs by one
        "model.encoder.layers.0.fusion_layer.vision_param": "transformer.encoder.fusion_layers.0.gamma_v",
    }
    for key, source in pairs.items():
        assert torch.equal(own[key], tiny_sd["module." + source]), key
    qkv = tiny_sd["module.backbone.0.layers.0.blocks.0.attn.qkv.weight"]
    for name, part in zip(swin.swin_qkv, qkv.chunk(3)):  # the fused q/k/v matrix, split in order
        assert torch.equal(own[f"{block}{name}.weight"], part)


def test_unprefixed_and_bare_state_dicts_load(tiny_gdino, tiny_sd, tmp_path):
    plain = {k.removeprefix("module."): v for k, v in tiny_sd.items()}
    weights = copy_tiny(tiny_gdino, tmp_path / "a", sd=plain)  # swinb_cogcoor style: no prefix
    ref = load_grounding_dino(*tiny_gdino).model.state_dict()
    got = load_grounding_dino(weights, tiny_gdino[1]).model.state_dict()
    assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
    bare = tmp_path / "b" / "bare.pth"
    bare.parent.mkdir()
    torch.save(plain, bare)  # no {"model": ...} container
    shutil.copy(tiny_gdino[0].with_suffix(".json"), bare.with_suffix(".json"))
    load_grounding_dino(bare, tiny_gdino[1])


def test_safetensors_checkpoint_loads(tiny_gdino, tiny_sd, tmp_path):
    from safetensors.torch import save_file

    weights = tmp_path / "tiny.safetensors"
    save_file({k.removeprefix("module."): v.clone().contiguous() for k, v in tiny_sd.items()}, str(weights))
    shutil.copy(tiny_gdino[0].with_suffix(".json"), weights.with_suffix(".json"))
    d = load_grounding_dino(weights, tiny_gdino[1])
    assert torch.equal(d.model.state_dict()["model.text_projection.weight"], tiny_sd["module.feat_map.weight"])


def test_missing_key_is_refused(tiny_gdino, tiny_sd, tmp_path):
    sd = dict(tiny_sd)
    del sd["module.feat_map.bias"]
    weights = copy_tiny(tiny_gdino, tmp_path, sd=sd)
    with pytest.raises(CheckpointError, match=r"1 missing: feat_map\.bias") as err:
        load_grounding_dino(weights, tiny_gdino[1])
    assert str(weights) in str(err.value) and "JSON config model.json" in str(err.value)


def test_unknown_extra_key_is_refused(tiny_gdino, tiny_sd, tmp_path):
    sd = {**tiny_sd, "module.decoder_extra.weight": torch.zeros(3)}
    weights = copy_tiny(tiny_gdino, tmp_path, sd=sd)
    with pytest.raises(CheckpointError, match=r"1 unexpected: decoder_extra\.weight"):
        load_grounding_dino(weights, tiny_gdino[1])


def test_wrong_shape_is_refused(tiny_gdino, tiny_sd, tmp_path):
    sd = {**tiny_sd, "module.feat_map.bias": torch.zeros(128)}
    weights = copy_tiny(tiny_gdino, tmp_path, sd=sd)
    wrong = r"wrong shape: feat_map\.bias \(file \(128,\), model \(256,\)\)"
    with pytest.raises(CheckpointError, match=wrong):
        load_grounding_dino(weights, tiny_gdino[1])


def test_prefix_left_on_some_keys_is_refused(tiny_gdino, tiny_sd, tmp_path):
    # A DataParallel prefix twice ("module.module.") must not load silently.
    sd = {("module." + k if "feat_map" in k else k): v for k, v in tiny_sd.items()}
    weights = copy_tiny(tiny_gdino, tmp_path, sd=sd)
    with pytest.raises(CheckpointError, match="missing"):
        load_grounding_dino(weights, tiny_gdino[1])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_malicious_pickle_is_refused_and_never_runs(tiny_gdino, tmp_path):
    marker = tmp_path / "pwned"
    weights = tmp_path / "groundingdino_swint_ogc.pth"
    torch.save({"model": {"module.x": _Payload(marker)}}, weights)
    with pytest.raises(CheckpointError, match="refused"):
        load_grounding_dino(weights, tiny_gdino[1])
    assert not marker.exists()
    with weights.open("wb") as f:
        pickle.dump(_Payload(marker), f, protocol=2)
    with pytest.raises(CheckpointError):
        load_grounding_dino(weights, tiny_gdino[1])
    assert not marker.exists()


def test_truncated_file_is_refused(tiny_gdino, tmp_path):
    data = tiny_gdino[0].read_bytes()
    weights = tmp_path / "cut.pth"
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_grounding_dino(weights, tiny_gdino[1])
    assert str(weights) in str(err.value)


def test_text_encoder_is_required_and_checked(tiny_gdino, tmp_path):
    with pytest.raises(InputError, match="bert-base-uncased"):
        load_grounding_dino(tiny_gdino[0])
    with pytest.raises(CheckpointError, match="not a folder"):
        load_grounding_dino(tiny_gdino[0], tmp_path / "nowhere")
    no_vocab = tmp_path / "no-vocab"
    shutil.copytree(tiny_gdino[1], no_vocab)
    (no_vocab / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match="vocab.txt"):
        load_grounding_dino(tiny_gdino[0], no_vocab)
    wider = gm.build_bert_folder(tmp_path / "bert-wider", **{**gm.TINY_BERT, "hidden_size": 64})
    with pytest.raises(CheckpointError, match="hidden size 64") as err:
        load_grounding_dino(tiny_gdino[0], wider)
    assert str(wider) in str(err.value)


# --- detection ------------------------------------------------------------------------------


def test_32_labels_run_in_one_pass(det, photo):
    labels = gm.WORDS[100:132]
    assert len(labels) == 32
    progress_calls = []
    with counting(det.model) as calls:
        found = det.detect(photo, labels, box_threshold=0.0, text_threshold=0.0,
                           progress=Progress(on_advance=lambda d, t: progress_calls.append(d)))
    assert len(calls) == 1 == len(det.captions(labels))
    assert len(progress_calls) == 1
    assert set(found.labels) <= set(labels)


def test_long_label_list_needs_more_passes(det, photo):
    labels = [f"{a} {b}" for a in ("red", "blue", "green") for b in gm.WORDS[100:140]]  # 120 x 3 tokens
    with counting(det.model) as calls:
        found = det.detect(photo, labels, box_threshold=0.0, text_threshold=0.0, max_detections=1000)
    assert len(calls) == len(det.captions(labels)) == 2
    assert set(found.labels) <= set(labels)


def test_cancel_between_passes(det, photo):
    labels = [f"{a} {b}" for a in ("red", "blue", "green") for b in gm.WORDS[100:140]]

    def stop():
        if calls:
            raise KeyboardInterrupt

    with counting(det.model) as calls, pytest.raises(KeyboardInterrupt):
        det.detect(photo, labels, progress=Progress(on_check=stop))
    assert len(calls) == 1


@pytest.mark.parametrize("labels", [[], ["", "  "], ["...", "?!", " - "]])
def test_no_usable_labels_runs_nothing(det, photo, labels):
    with counting(det.model) as calls:
        found = det.detect(photo, labels)
    assert len(calls) == 0 and len(found) == 0 and found.boxes.shape == (0, 4)


def test_labels_come_back_cleaned_and_one_each(det, photo):
    found = det.detect(photo, ["  TV", "Lamp ", "tv", "speaker"], box_threshold=0.0, text_threshold=0.0)
    assert len(found) > 0
    assert set(found.labels) <= {"tv", "lamp", "speaker"}


def test_thresholds_and_cap(det, photo):
    everything = det.detect(photo, ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0, max_detections=1000)
    assert 0 < len(everything) <= det.model.config.num_queries
    assert len(det.detect(photo, ["tv", "lamp"], box_threshold=1.0, text_threshold=0.0)) == 0
    assert len(det.detect(photo, ["tv", "lamp"], box_threshold=0.0, text_threshold=1.0)) == 0
    mid = det.detect(photo, ["tv", "lamp"], box_threshold=0.0, text_threshold=0.5, max_detections=1000)
    assert np.all(mid.scores > 0.5) and len(mid) <= len(everything)
    capped = det.detect(photo, ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0, max_detections=3)
    assert len(capped) == 3
    np.testing.assert_array_equal(capped.scores, everything.scores[:3])  # the best ones, by score
    with pytest.raises(InputError, match="box_threshold"):
        det.detect(photo, ["tv"], box_threshold=1.5)


def test_per_label_nms(det, photo):
    from torchvision.ops import box_iou

    found = det.detect(photo, ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0, max_detections=1000)
    for label in set(found.labels):
        b = torch.from_numpy(found.boxes[[i for i, n in enumerate(found.labels) if n == label]])
        iou = box_iou(b, b).fill_diagonal_(0)
        assert float(iou.max()) <= 0.5 + 1e-6


def test_within_runs_on_the_crop_and_offsets_boxes(det, photo):
    within = (100.4, 50.0, 400.0, 300.6)
    inside = det.detect(photo, ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0, within=within)
    crop = det.detect(photo[50:301, 100:400], ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0)
    assert len(inside) == len(crop) > 0
    np.testing.assert_allclose(inside.boxes, crop.boxes + np.array([100, 50, 100, 50], np.float32), atol=1e-3)
    assert inside.labels == crop.labels
    b = inside.boxes
    assert b[:, 0].min() >= 100 and b[:, 1].min() >= 50 and b[:, 2].max() <= 400 and b[:, 3].max() <= 301
    assert len(det.detect(photo, ["tv"], within=(5000, 5000, 6000, 6000))) == 0
    with pytest.raises(InputError, match="within"):
        det.detect(photo, ["tv"], within=(1, 2, 3))


def _variant(photo: np.ndarray, kind: str) -> np.ndarray:
    from PIL import Image

    h, w = photo.shape[:2]
    if kind == "rgba":
        return np.concatenate([photo, np.full((h, w, 1), 128, np.uint8)], axis=2)
    if kind == "grey":
        return photo.mean(axis=2).astype(np.uint8)
    if kind == "uint16":
        return photo.astype(np.uint16) * 257
    size = {"16x16": (16, 16), "6000x4000": (6000, 4000)}[kind]
    return np.asarray(Image.fromarray(photo).resize(size))


@pytest.mark.parametrize("kind", ["rgba", "grey", "uint16", "16x16", "6000x4000"])
def test_boxes_inside_image_for_all_formats(det, photo, kind):
    image = _variant(photo, kind)
    found = det.detect(image, ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0)
    assert len(found) > 0
    assert_inside(found, image.shape[1], image.shape[0])
    if kind == "6000x4000":  # boxes scale with the image, not the model's working size
        assert found.boxes[:, 2].max() > 1333


def test_preprocessing_is_groundingdinos(det, photo):
    from cielr_core.perception.detector import gdino_image_tensor

    t = gdino_image_tensor(photo)
    assert t.shape == (3, 800, 1066)  # short side 800 (photo is 796 x 597)
    wide = gdino_image_tensor(np.zeros((100, 1000, 3), np.uint8))
    assert wide.shape == (3, 133, 1330)  # long side capped near 1333 (groundingdino rounds the short side)
    assert bool(torch.isfinite(t).all())
    black = gdino_image_tensor(np.zeros((10, 10, 3), np.uint8))
    imagenet_black = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    np.testing.assert_allclose(black[:, 0, 0].numpy(), imagenet_black, rtol=1e-5)


def test_to_moves_the_model(tiny_gdino):
    d = load_grounding_dino(*tiny_gdino, device="cpu")
    assert d.to("cpu") is d and d.device == torch.device("cpu")
    assert next(d.model.parameters()).device == torch.device("cpu")
    assert isinstance(d.model, torch.nn.Module)


# --- transformers 4.57 gives the same outputs (the conversion follows its layout) ------------------------------


def test_same_outputs_on_transformers_4_57(tiny_gdino, tmp_path):
    if not (TRANSFORMERS4 / "transformers").is_dir():
        pytest.skip(f"transformers 4.57 folder {TRANSFORMERS4} is absent (scripts/setup_env.sh builds it)")
    from tests.conftest import CIEBENCH

    image = str(CIEBENCH / "0" / "0.png")
    weights, bert = (str(p) for p in tiny_gdino)
    gm.reference_outputs(weights, bert, image, str(tmp_path / "v5.npz"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TRANSFORMERS4), str(REPO)])}
    code = ("import sys; from devkit.gdino_models import reference_outputs; "
            "reference_outputs(*sys.argv[1:])")
    run = subprocess.run([sys.executable, "-c", code, weights, bert, image, str(tmp_path / "v4.npz")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    v5, v4 = np.load(tmp_path / "v5.npz"), np.load(tmp_path / "v4.npz")
    assert str(v4["version"]).startswith("4.57") and str(v5["version"]).startswith("5.")
    # transformers 5 renamed the Swin attention modules; the conversion followed the installed names
    assert str(v5["swin_attention"]) == "attention.o_proj" and str(v4["swin_attention"]) == "attention.output.dense"
    finite = np.isfinite(v5["logits"])
    assert np.array_equal(finite, np.isfinite(v4["logits"])) and finite.sum() > 0
    # the two versions' kernels differ (SDPA in 5's Swin, ...): float32 rounding, not a different model
    np.testing.assert_allclose(v5["logits"][finite], v4["logits"][finite], rtol=0, atol=2e-4)
    np.testing.assert_allclose(v5["boxes"], v4["boxes"], rtol=0, atol=1e-5)
    assert list(v5["det_labels"]) == list(v4["det_labels"]) and len(v5["det_labels"]) > 0
    np.testing.assert_allclose(v5["det_boxes"], v4["det_boxes"], atol=1e-3)
    np.testing.assert_allclose(v5["det_scores"], v4["det_scores"], atol=1e-5)


# --- HF-format folders ----------------------------------------------------------------------


def test_hf_folder_detects_with_the_same_rules(tiny_hf_gdino, photo):
    d = load_grounding_dino(tiny_hf_gdino)
    assert d.name.startswith("HF folder") and isinstance(d.model, torch.nn.Module)
    labels = [f"{a} {b}" for a in ("red", "blue", "green") for b in gm.WORDS[100:140]]
    with counting(d.model) as calls:
        found = d.detect(photo, labels, box_threshold=0.0, text_threshold=0.0)
    assert len(calls) == len(d.captions(labels)) == 2
    assert len(found) > 0 and set(found.labels) <= set(labels)
    assert_inside(found, photo.shape[1], photo.shape[0])
    inside = d.detect(photo, ["tv"], box_threshold=0.0, text_threshold=0.0, within=(100, 50, 400, 300))
    assert len(inside) > 0 and inside.boxes[:, 0].min() >= 100 and inside.boxes[:, 2].max() <= 400
    assert len(d.detect(photo, ["tv"], box_threshold=1.0)) == 0
    with counting(d.model) as calls:
        assert len(d.detect(photo, ["..."])) == 0
    assert not calls


def test_hf_folder_needs_grounding_dino_config(tiny_gdino, tmp_path):
    with pytest.raises(CheckpointError, match="'bert'"):
        load_grounding_dino(tiny_gdino[1])  # a BERT folder is not a detector
    with pytest.raises(CheckpointError, match="config.json"):
        load_grounding_dino(tmp_path)


# --- full-size files (random weights, official layouts) -------------------------------------


@pytest.mark.slow
def test_full_size_swint_ogc_and_bert_base_load_and_match_groundingdino(full_swint, photo):
    """The release's layout ({"model": ...}, "module." keys) loads strictly and runs as groundingdino-py
    runs it (tolerances in devkit/gdino_reference.py)."""
    weights, bert = full_swint
    sd = torch.load(weights, weights_only=True)
    assert list(sd) == ["model"] and all(k.startswith("module.") for k in sd["model"])
    probe = sd["model"]["module.transformer.tgt_embed.weight"].clone()
    del sd
    d = load_grounding_dino(weights, bert)
    assert d.name == "SwinT-OGC"
    assert d.model.config.text_config.hidden_size == 768 and len(d.tokenizer) == 30522
    assert d.tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]) == [101, 102, 1012, 1029]
    assert torch.equal(d.model.state_dict()["model.query_position_embeddings.weight"], probe)
    ref = load_reference(weights, bert)
    for detector in (d, ref):
        detector.short_side, detector.long_side = 320, 480  # the file layout is what is under test
    assert_same_outputs(raw_outputs(d, photo, gm.EQUALITY_LABELS), raw_outputs(ref, photo, gm.EQUALITY_LABELS))
    found = d.detect(photo, ["tv", "lamp", "speaker"], box_threshold=0.0, text_threshold=0.0)
    assert len(found) > 0  # detections themselves are compared on the tiny model (test_detector_equivalence)
    assert_inside(found, photo.shape[1], photo.shape[0])


@pytest.mark.slow
def test_swinb_cogcoor_layout_loads_and_matches_groundingdino(tiny_gdino, tmp_path, photo):
    """SwinB-COGCOOR's layout (no prefix) from groundingdino's own SwinB config; tiny BERT to save time."""
    reference = gm.build_release_model("SwinB-COGCOOR", tiny_gdino[1])
    weights = gm.save_release(reference, tmp_path / "groundingdino_swinb_cogcoor.pth", "SwinB-COGCOOR")
    sd = torch.load(weights, weights_only=True)["model"]
    assert not any(k.startswith("module.") for k in sd) and all(k in sd for k in KNOWN_EXTRA_KEYS)
    key = "backbone.0.layers.2.blocks.17.attn.relative_position_bias_table"  # SwinB's 18-block stage
    probe = sd[key].clone()
    del sd
    d = load_grounding_dino(weights, tiny_gdino[1])
    assert d.name == "SwinB-COGCOOR"
    assert d.model.config.backbone_config.window_size == 12
    own = d.model.state_dict()
    layout = gdino_convert.layout_of(own)
    assert torch.equal(own[f"{layout.swin}encoder.layers.2.blocks.17.{layout.swin_table}"], probe)
    ref = ReferenceDetector(reference, reference.tokenizer, reference.max_text_len, "groundingdino-py SwinB")
    for detector in (d, ref):
        detector.short_side, detector.long_side = 224, 320  # windows of 12 over a 7 x 10 last stage
    assert_same_outputs(raw_outputs(d, photo, gm.EQUALITY_LABELS), raw_outputs(ref, photo, gm.EQUALITY_LABELS))
