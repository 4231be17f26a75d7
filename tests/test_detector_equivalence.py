"""Released GroundingDINO checkpoints on transformers give groundingdino-py's outputs.

groundingdino-py (a test requirement only) is the reference: the same file is run by it and by the
pack's transformers path. Tolerances (``devkit/gdino_reference.py``): logits within 2e-4
(they reach about 50; observed differences up to about 7e-5, float32 rounding) and normalised boxes
within 5e-6 (observed under 1e-6); detections: same labels in the same order, boxes within 0.01 px,
scores within 5e-5. The full-size SwinT-OGC and SwinB-COGCOOR comparisons are in test_detector.py,
next to the tests that load those files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cielr_core.errors import CheckpointError
from cielr_core.perception.detector import Detector, gdino_image_tensor, load_grounding_dino
from devkit import gdino_models as gm
from devkit.gdino_reference import (
    assert_same_detections,
    assert_same_outputs,
    groundingdino_image_tensor,
    load_reference,
    raw_outputs,
)
from tests.conftest import REPO, load_photo

PHOTOS = (0, 12)


@pytest.fixture(scope="module")
def perturbed(tiny_gdino, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny checkpoint with every tensor moved off its initial value.

    Fresh models have identity LayerNorms, zero last box layers and near-zero fusion gates, under
    which a swapped or skipped tensor would change nothing; here every tensor matters. Shared box
    heads stay shared, as training keeps them.
    """
    sd = torch.load(tiny_gdino[0], weights_only=True)["model"]
    g = torch.Generator().manual_seed(3)
    for key, tensor in sd.items():
        if tensor.is_floating_point():
            sd[key] = tensor + 0.05 * torch.randn(tensor.shape, generator=g)
    for key in sd:
        if key.startswith("module.transformer.decoder.bbox_embed."):
            sd[key] = sd[key.replace("module.transformer.decoder.", "module.")]
    folder = tmp_path_factory.mktemp("perturbed-gdino")
    torch.save({"model": sd}, folder / "tiny_gdino.pth")
    shutil.copy(tiny_gdino[0].with_suffix(".json"), folder / "tiny_gdino.json")
    return folder / "tiny_gdino.pth", tiny_gdino[1]


@pytest.fixture(scope="module")
def pair(perturbed) -> tuple[Detector, Detector]:
    """(the pack's detector, groundingdino-py's) on the same file, at a small working size."""
    new, ref = load_grounding_dino(*perturbed), load_reference(*perturbed)
    for d in (new, ref):
        d.short_side, d.long_side = 320, 480
    return new, ref


@pytest.mark.parametrize("index", PHOTOS)
def test_tiny_outputs_match_groundingdino(pair, index):
    new, ref = pair
    photo = load_photo(index)
    labels = gm.EQUALITY_LABELS
    assert_same_outputs(raw_outputs(new, photo, labels), raw_outputs(ref, photo, labels))


def test_tiny_detections_match_groundingdino_on_photos(pair):
    long_list = [f"{a} {b}" for a in ("red", "blue", "green") for b in gm.WORDS[100:140]]  # two passes
    assert len(pair[0].captions(long_list)) == 2
    cases = [(0, long_list, {"max_detections": 300}), (5, gm.EQUALITY_LABELS, {}),
             (12, ["tv", "lamp"], {"within": (100.4, 50.0, 400.0, 300.6)})]
    for index, labels, kwargs in cases:
        photo = load_photo(index)
        found = [d.detect(photo, labels, box_threshold=0.05, text_threshold=0.05, **kwargs) for d in pair]
        assert_same_detections(*found)


def test_preprocessing_is_groundingdinos_bit_for_bit(photo):
    from PIL import Image

    images = [photo, photo[:, :500], np.asarray(Image.fromarray(photo).resize((1600, 1200)))]
    images += [np.full(shape, 200, np.uint8) for shape in
               ((100, 1000, 3), (1000, 100, 3), (16, 16, 3), (800, 1200, 3), (801, 1333, 3), (20, 5000, 3))]
    for rgb in images:
        for sides in ((800, 1333), (320, 480)):
            assert torch.equal(gdino_image_tensor(rgb, *sides), groundingdino_image_tensor(rgb, *sides)), \
                (rgb.shape, sides)


def test_loading_and_detecting_never_import_groundingdino(tiny_gdino):
    code = """
import sys
from cielr_core.perception import load_grounding_dino
from tests.conftest import load_photo
detector = load_grounding_dino(sys.argv[1], sys.argv[2])
detector.short_side, detector.long_side = 224, 320
found = detector.detect(load_photo(0), ["tv", "lamp"], box_threshold=0.0, text_threshold=0.0)
print("detections", len(found))
print("imported", sorted(m for m in sys.modules if m.split(".")[0] in ("groundingdino", "supervision")))
"""
    done = subprocess.run([sys.executable, "-c", code, *map(str, tiny_gdino)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported []" in done.stdout and "detections 0" not in done.stdout, done.stdout


# --- strict loading names what is wrong, in the file's own key names ------------------------


def _edit_missing_qkv(sd):
    del sd["module.backbone.0.layers.1.blocks.0.attn.qkv.weight"]


def _edit_missing_pooler(sd):
    del sd["module.bert.pooler.dense.bias"]


def _edit_unknown_layer(sd):  # a name the rules know, for a layer this text encoder does not have
    sd["module.bert.encoder.layer.7.output.dense.weight"] = torch.zeros(32, 64)


def _edit_qkv_shape(sd):
    sd["module.backbone.0.layers.0.blocks.0.attn.qkv.weight"] = torch.zeros(95, 32)


def _edit_index(sd):
    key = "module.backbone.0.layers.0.blocks.0.attn.relative_position_index"
    sd[key] = torch.zeros(49, 49, dtype=torch.long)


def _edit_shared_head(sd):
    key = "module.transformer.decoder.bbox_embed.0.layers.2.weight"
    sd[key] = sd[key] + 1


@pytest.mark.parametrize("edit,match", [
    (_edit_missing_qkv, r"1 missing: backbone\.0\.layers\.1\.blocks\.0\.attn\.qkv\.weight"),
    (_edit_missing_pooler, r"1 missing: bert\.pooler\.dense\.bias"),
    (_edit_unknown_layer, r"1 unexpected: bert\.encoder\.layer\.7\.output\.dense\.weight"),
    (_edit_qkv_shape, r"wrong shape: backbone\.0\.layers\.0\.blocks\.0\.attn\.qkv\.weight \(file \(95, 32\), "
                      r"model \(96, 32\)\)"),
    (_edit_index, r"1 inconsistent: backbone\.0\.layers\.0\.blocks\.0\.attn\.relative_position_index"),
    (_edit_shared_head, r"1 inconsistent: .*bbox_embed\.0\.layers\.2\.weight differs from .*bbox_embed\.0\."),
])
def test_conversion_is_strict(tiny_gdino, tmp_path, edit, match):
    sd = torch.load(tiny_gdino[0], weights_only=True)["model"]
    edit(sd)
    weights = tmp_path / "model.pth"
    torch.save({"model": sd}, weights)
    shutil.copy(tiny_gdino[0].with_suffix(".json"), weights.with_suffix(".json"))
    with pytest.raises(CheckpointError, match=match) as err:
        load_grounding_dino(weights, tiny_gdino[1])
    assert str(weights) in str(err.value)


def test_options_transformers_cannot_run_are_refused(tiny_gdino, tmp_path):
    weights = tmp_path / "model.pth"
    shutil.copy(tiny_gdino[0], weights)
    weights.with_suffix(".json").write_text(
        __import__("json").dumps({**gm.TINY_GDINO_JSON, "use_fusion_layer": False}))
    with pytest.raises(CheckpointError, match="use_fusion_layer=False"):
        load_grounding_dino(weights, tiny_gdino[1])


def test_text_encoder_vocabulary_must_put_the_phrase_tokens_where_bert_does(tiny_gdino, tmp_path):
    folder = tmp_path / "bert-shuffled"
    shutil.copytree(tiny_gdino[1], folder)
    vocab = (folder / "vocab.txt").read_text().splitlines()
    i, j = vocab.index("."), vocab.index("a")
    vocab[i], vocab[j] = vocab[j], vocab[i]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    with pytest.raises(CheckpointError, match=r"'\.': \d+") as err:
        load_grounding_dino(tiny_gdino[0], folder)
    assert str(folder) in str(err.value)


# --- the reference's compatibility layer (groundingdino-py on transformers 5) ----------------


def test_compat_layer_is_narrow(pair):
    import transformers
    from groundingdino.util import get_tokenlizer
    from transformers import BertModel

    from devkit import gdino_compat

    ref = pair[1]
    # groundingdino's factories are restored after the build, and no transformers class is patched.
    assert get_tokenlizer.get_tokenlizer.__module__ == "groundingdino.util.get_tokenlizer"
    assert get_tokenlizer.get_pretrained_language_model.__module__ == "groundingdino.util.get_tokenlizer"
    if int(transformers.__version__.split(".")[0]) >= 5:
        assert not hasattr(BertModel, "get_extended_attention_mask")
        assert "forward" in vars(ref.model.bert)  # the instance, not the class
        assert not gdino_compat.embeddings_take_past_length(ref.model.bert.embeddings)


def test_extended_mask_matches_transformers_4_semantics():
    from devkit.gdino_compat import _extended_attention_mask

    class Holder:
        dtype = torch.float32

    mask3 = torch.tensor([[[1, 0], [1, 1]]], dtype=torch.bool)
    out = _extended_attention_mask(Holder(), mask3, (1, 2))
    low = torch.finfo(torch.float32).min
    assert out.shape == (1, 1, 2, 2)
    assert torch.equal(out, torch.tensor([[[[0.0, low], [0.0, 0.0]]]]))
    assert _extended_attention_mask(Holder(), torch.tensor([[1, 0]]), (1, 2)).shape == (1, 1, 1, 2)
