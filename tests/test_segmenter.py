"""SAM segmenter: architecture from the state dict, safe loading, batched decoding, caching."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cielr_core.errors import CheckpointError, InputError
from cielr_core.perception.segmenter import (
    SamArchitecture,
    Segmenter,
    build_sam,
    load_sam,
    sam_architecture,
)
from cielr_core.progress import Progress
from devkit.sam_models import TINY_ARCH
from tests.conftest import load_photo

OFFICIAL = {
    "vit_b": dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12,
                  encoder_global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": dict(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                  encoder_global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": dict(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                  encoder_global_attn_indexes=(7, 15, 23, 31)),
}


class EncoderCounter:
    """Counts image-encoder forward passes through a hook (the expensive step to avoid)."""

    def __init__(self, seg: Segmenter):
        self.calls = 0
        self.handle = seg.model.image_encoder.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1

    def close(self):
        self.handle.remove()


@pytest.fixture(scope="module")
def tiny(tiny_sam_path) -> Segmenter:
    return load_sam(tiny_sam_path)


@pytest.fixture
def counter(tiny):
    tiny.clear_cache()
    c = EncoderCounter(tiny)
    yield c
    c.close()


@pytest.fixture(scope="module")
def tiny_sd(tiny_sam_path) -> dict:
    return torch.load(tiny_sam_path, weights_only=True)


def _boxes(w: int, h: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy0 = rng.uniform(0, [w * 0.7, h * 0.7], size=(n, 2))
    wh = rng.uniform(8, [w * 0.3, h * 0.3], size=(n, 2))
    return np.concatenate([xy0, xy0 + wh], axis=1).astype(np.float32)


# --------------------------------------------------------------------------- architecture


def test_tiny_architecture_read_from_file(tiny_sd):
    arch = sam_architecture(tiny_sd)
    for key, value in TINY_ARCH.items():
        assert getattr(arch, key) == value, key
    assert arch.name == "vit_32x2"


@pytest.mark.parametrize("size", ["vit_b", "vit_l", "vit_h"])
def test_official_architectures_from_shapes(size):
    from segment_anything import sam_model_registry

    with torch.device("meta"):  # shapes only: vit_h's 2.5 GB never gets allocated
        ref = sam_model_registry[size]().state_dict()
    arch = sam_architecture(ref)
    for key, value in OFFICIAL[size].items():
        assert getattr(arch, key) == value, key
    assert (arch.image_size, arch.patch_size, arch.encoder_window_size) == (1024, 16, 14)
    assert (arch.prompt_embed_dim, arch.decoder_depth, arch.decoder_mlp_dim) == (256, 2, 2048)
    assert arch.name == size
    with torch.device("meta"):
        rebuilt = build_sam(arch).state_dict()
    assert rebuilt.keys() == ref.keys()
    assert all(rebuilt[k].shape == ref[k].shape for k in ref)


def test_heads_fall_back_to_official_table_without_rel_pos():
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        sd = sam_model_registry["vit_h"]().state_dict()
    sd = {k: v for k, v in sd.items() if "rel_pos" not in k}
    arch = sam_architecture(sd)
    assert arch.encoder_num_heads == 16 and not arch.encoder_use_rel_pos
    assert arch.notes  # says the head count was guessed


def test_json_beside_file_overrides_guess(tmp_path):
    arch = SamArchitecture(**{**TINY_ARCH, "encoder_embed_dim": 64, "encoder_num_heads": 4,
                              "encoder_use_rel_pos": False})
    torch.manual_seed(0)
    path = tmp_path / "sam_custom.pth"
    torch.save(build_sam(arch).state_dict(), path)
    assert load_sam(path).architecture.encoder_num_heads == 1  # 64 // 64: a guess
    path.with_suffix(".json").write_text('{"encoder_num_heads": 4}')
    seg = load_sam(path)
    assert seg.architecture.encoder_num_heads == 4
    assert seg.model.image_encoder.blocks[0].attn.num_heads == 4
    path.with_suffix(".json").write_text('{"heads": 4}')
    with pytest.raises(CheckpointError, match="unknown keys"):
        load_sam(path)


# --------------------------------------------------------------------------- full-size ViT-B file


@pytest.mark.slow
def test_full_size_vit_b_file_loads_and_segments(full_sam_vit_b_path, photo):
    assert full_sam_vit_b_path.name == "sam_vit_b_01ec64.pth"
    seg = load_sam(full_sam_vit_b_path)
    assert seg.architecture.name == "vit_b"
    assert sum(p.numel() for p in seg.model.parameters()) == 93_735_472
    h, w = photo.shape[:2]
    masks = seg.segment(photo, [[w * 0.2, h * 0.3, w * 0.6, h * 0.9]])
    assert masks.shape == (1, h, w) and masks.dtype == bool


# --------------------------------------------------------------------------- segmenting


@pytest.mark.parametrize("n", [0, 1, 5, 70])
def test_masks_have_image_size(tiny, counter, photo, n):
    h, w = photo.shape[:2]
    masks = tiny.segment(photo, _boxes(w, h, n))
    assert masks.shape == (n, h, w) and masks.dtype == bool
    assert counter.calls == (1 if n else 0)  # no boxes: the encoder never runs


def test_masks_on_several_photos_differ_per_box(tiny):
    for index in (1, 2):
        img = load_photo(index)
        h, w = img.shape[:2]
        masks = tiny.segment(img, _boxes(w, h, 6, seed=index))
        assert masks.shape == (6, h, w)
        assert len({m.tobytes() for m in masks}) > 1


def test_batched_decoding_matches_one_box_at_a_time(tiny_sam_path, photo):
    seg = load_sam(tiny_sam_path, chunk_size=4)
    h, w = photo.shape[:2]
    boxes = _boxes(w, h, 10, seed=3)
    batched = seg.segment(photo, boxes)
    for i, box in enumerate(boxes):
        single = seg.segment(photo, box[None])[0]
        assert np.mean(single != batched[i]) < 1e-3


def test_boxes_decoded_in_bounded_batches(tiny_sam_path, photo):
    seg = load_sam(tiny_sam_path, chunk_size=16)
    batches = []
    hook = seg.model.mask_decoder.transformer.register_forward_hook(
        lambda mod, args, out: batches.append((args[0].shape[0], out[1].shape[0])))
    h, w = photo.shape[:2]
    seg.segment(photo, _boxes(w, h, 40))
    hook.remove()
    # three decoder calls of at most 16 boxes; the image embedding enters once per call, not per box
    assert [n for _, n in batches] == [16, 16, 8]
    assert all(image_batch == 1 for image_batch, _ in batches)
    assert load_sam(tiny_sam_path).chunk_size == 8  # the CPU default


def test_broadcast_decoder_matches_segment_anything(tiny):
    pe, md = tiny.model.prompt_encoder, tiny.model.mask_decoder
    torch.manual_seed(0)
    features = torch.randn(1, *md.transformer.layers[0].norm4.weight.shape, 64, 64)
    boxes = torch.tensor([[10.0, 20, 300, 400], [500, 500, 900, 1000], [0, 0, 1024, 1024]])
    with torch.inference_mode():
        ours = tiny.decode_low_res(features, boxes)
        sparse, dense = pe(points=None, boxes=boxes, masks=None)
        theirs, _ = md(image_embeddings=features, image_pe=pe.get_dense_pe(), sparse_prompt_embeddings=sparse,
                       dense_prompt_embeddings=dense, multimask_output=False)
    assert ours.shape == theirs.shape == (3, 1, 256, 256)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_boxes_are_clipped_to_the_image(tiny, photo):
    h, w = photo.shape[:2]
    masks = tiny.segment(photo, [[-80, -40, w + 90, h + 70], [0, 0, w, h],
                                 [w - 20, 10, w + 400, 60], [w - 20, 10, w, 60],
                                 [60, 50, 10, 5], [10, 5, 60, 50]])
    assert np.array_equal(masks[0], masks[1])
    assert np.array_equal(masks[2], masks[3])
    assert np.array_equal(masks[4], masks[5])  # corners given in the wrong order
    outside = tiny.segment(photo, [[w + 10, 0, w + 50, 40], [-30, -30, -1, -1]])
    assert outside.shape == (2, h, w) and not outside.any()


def test_embedding_computed_once_per_image(tiny, counter, photo):
    h, w = photo.shape[:2]
    first = tiny.segment(photo, _boxes(w, h, 3))
    again = tiny.segment(photo.copy(), _boxes(w, h, 3))  # same pixels, another array
    assert counter.calls == 1
    assert np.array_equal(first, again)
    other = load_photo(1)
    tiny.segment(other, _boxes(*other.shape[1::-1], 2))
    assert counter.calls == 2
    tiny.segment(photo, _boxes(w, h, 1))  # only the most recent embedding is kept
    assert counter.calls == 3


def test_changed_pixel_invalidates_embedding(tiny, counter, photo):
    tiny.segment(photo, [[10, 10, 100, 100]])
    edited = photo.copy()
    edited[5, 5, 0] ^= 1
    tiny.segment(edited, [[10, 10, 100, 100]])
    assert counter.calls == 2


def test_input_image_not_modified(tiny, photo):
    img = photo.copy()
    img.setflags(write=False)
    tiny.segment(img, [[10, 10, 200, 200]])
    assert np.array_equal(img, photo)


def test_image_kinds(tiny, photo):
    h, w = photo.shape[:2]
    box = [[30, 40, w * 0.6, h * 0.7]]
    rgb = tiny.segment(photo, box)
    rgba = np.concatenate([photo, np.full((h, w, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(tiny.segment(rgba, box), rgb)
    assert np.array_equal(tiny.segment(photo.astype(np.uint16) * 257, box), rgb)
    grey = tiny.segment(photo[:, :, 1], box)
    assert grey.shape == (1, h, w) and grey.dtype == bool
    small = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    assert tiny.segment(small, [[2, 2, 12, 14], [0, 0, 16, 16]]).shape == (2, 16, 16)
    tall = np.random.default_rng(1).integers(0, 255, (300, 7), dtype=np.uint8)
    assert tiny.segment(tall, [[0, 0, 7, 150]]).shape == (1, 300, 7)


def test_bad_boxes_are_input_errors(tiny, photo):
    with pytest.raises(InputError):
        tiny.segment(photo, [1, 2, 3])
    with pytest.raises(InputError):
        tiny.segment(photo, [[0, 0, float("nan"), 10]])


def test_progress_and_cancel(tiny_sam_path, photo):
    seg = load_sam(tiny_sam_path, chunk_size=8)
    h, w = photo.shape[:2]
    reports = []
    seg.segment(photo, _boxes(w, h, 20), Progress(on_advance=lambda d, t: reports.append((d, t))))
    assert reports[-1] == (4, 4)  # the embedding, then three chunks of 8, 8, 4

    class Cancelled(Exception):
        pass

    checks = []

    def check():
        checks.append(1)
        if len(checks) > 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        seg.segment(photo, _boxes(w, h, 40), Progress(on_check=check))


def test_device_dtype_and_model(tiny_sam_path, photo):
    seg = load_sam(tiny_sam_path, dtype=torch.bfloat16)
    assert isinstance(seg.model, torch.nn.Module)
    assert seg.device == torch.device("cpu")
    assert seg.model.image_encoder.patch_embed.proj.weight.dtype == torch.bfloat16
    assert seg.model.mask_decoder.iou_token.weight.dtype == torch.float32
    assert seg.to("cpu") is seg
    masks = seg.segment(photo, [[10, 10, 300, 300]])
    assert masks.shape == (1, *photo.shape[:2]) and masks.dtype == bool


# --------------------------------------------------------------------------- files


def test_safetensors_file_gives_same_masks(tiny, tiny_sd, tmp_path, photo):
    from safetensors.torch import save_file

    path = tmp_path / "sam_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_sd.items()}, str(path))
    box = [[50, 60, 400, 500]]
    assert np.array_equal(load_sam(path).segment(photo, box), tiny.segment(photo, box))


def test_wrapped_and_prefixed_state_dicts_load(tiny_sd, tmp_path):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {f"module.{k}": v for k, v in tiny_sd.items()}}, wrapped)
    assert load_sam(wrapped).architecture == sam_architecture(tiny_sd)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_refused_and_never_run(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "sam_vit_b_01ec64.pth"
    payload = {"image_encoder.patch_embed.proj.weight": _Payload(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="refused|truncated|not a checkpoint") as e:
        load_sam(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


def test_truncated_file(tiny_sam_path, tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    data = tiny_sam_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="sam_vit_b_01ec64.pth"):
        load_sam(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sam(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_sam(tmp_path / "empty.pth")


def test_not_a_sam_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(4)}, path)
    with pytest.raises(CheckpointError) as e:
        load_sam(path)
    msg = str(e.value)
    assert "resnet.pth" in msg and "sam_vit_b_01ec64.pth" in msg and "image_encoder" in msg


@pytest.mark.parametrize("damage", ["missing", "extra", "shape"])
def test_damaged_sam_state_dict_is_refused(tiny_sd, tmp_path, damage):
    sd = dict(tiny_sd)
    if damage == "missing":
        del sd["mask_decoder.iou_token.weight"]
    elif damage == "extra":
        sd["mask_decoder.surprise"] = torch.zeros(2)
    else:
        sd["mask_decoder.iou_prediction_head.layers.1.weight"] = torch.zeros(5, 5)
    path = tmp_path / f"sam_{damage}.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="do not fit") as e:
        load_sam(path)
    assert path.name in str(e.value)
