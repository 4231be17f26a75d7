"""The doors to other packs, library side (no ComfyUI server here): a plan out as Impact SEGS, another
pack's segment_anything Sam as the segmenter, and the reference GroundingDINO module (what storyicon's
GroundingDinoModelLoader hands out) converted into the detector.

The owners' objects are the real classes: segment_anything's ``Sam`` built by the same library call the
packs make, and groundingdino-py's ``GroundingDINO`` (the reference implementation storyicon vendors).
The tests with the packs themselves, in a real server, are in test_interop_packs.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cielr_core.editing import SEG, EditSettings, plan_regions, plan_segs
from cielr_core.errors import InputError
from cielr_core.perception import load_grounding_dino
from cielr_core.perception.adopted import adopt_sam, convert_groundingdino, tensor_bytes
from cielr_core.plan import Plan
from cielr_core.scene import Part, build_scene, scene_from_parts
from devkit.sam_models import tiny_sam_module
from nodes.bridge import segs_parts

W, H = 96, 64


def rect(x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((H, W), np.float32)
    m[y0:y1, x0:x1] = 1.0
    return m


def scene_and_plan():
    parts = [Part("lamp", mask=rect(10, 0, 30, 20)), Part("table", mask=rect(50, 30, 90, 60))]
    scene = build_scene(scene_from_parts(W, H, parts).scene)
    plan = Plan.model_validate({"actions": [
        {"op": "replace", "targets": [1], "prompt": "a floor lamp"},
        {"op": "remove", "targets": [2]},
        {"op": "add", "anchor": 1, "placement": "above", "prompt": "a bird"},  # lands above the image: empty
    ]})
    return scene, plan


# ------------------------------------------------------------------------------ Plan To SEGS


@pytest.mark.parametrize("feather", [0, 4])
def test_plan_segs_hold_each_actions_region(feather):
    scene, plan = scene_and_plan()
    settings = EditSettings(grow=3, feather=feather, context=6)
    regions = plan_regions(scene, plan, settings)
    out = plan_segs(scene, plan, settings)
    (height, width), segs = out.as_segs()
    assert (height, width) == (H, W) and out.indices == [1, 2] and out.skipped == [3]
    assert all(type(s) is SEG and s._fields == ("cropped_image", "cropped_mask", "confidence", "crop_region", "bbox",
                                                 "label", "control_net_wrapper") for s in segs)
    for seg, region in zip(segs, regions):
        x0, y0, x1, y1 = seg.crop_region
        assert all(type(v) is int for v in seg.crop_region + seg.bbox)
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H  # end-exclusive, inside the image
        assert seg.cropped_mask.dtype == np.float32 and seg.cropped_mask.shape == (y1 - y0, x1 - x0)
        full = np.zeros((H, W), np.float32)
        full[y0:y1, x0:x1] = seg.cropped_mask
        assert np.array_equal(full, region.weight)  # the same weight Plan To Masks gives, nothing cut off
        ys, xs = np.nonzero(region.weight)
        assert seg.bbox == [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        assert seg.label == region.prompt and seg.confidence == 1.0
        assert seg.cropped_image is None and seg.control_net_wrapper is None
    assert segs[1].label == settings.background_prompt
    assert "action 3: no SEG" in out.text()


def test_plan_segs_read_back_as_the_same_masks_and_crops_the_image():
    """Scene From SEGS (the reader this pack already has for Impact's SEGS) reads them back exactly."""
    scene, plan = scene_and_plan()
    settings = EditSettings(grow=2, feather=3, context=4)
    image = np.random.default_rng(0).random((H, W, 3), dtype=np.float32)
    out = plan_segs(scene, plan, settings, image)
    height, width, parts = segs_parts(out.as_segs(), "test")
    assert (height, width) == (H, W)
    for part, region, seg in zip(parts, plan_regions(scene, plan, settings), out.segs):
        assert np.array_equal(part.mask, region.weight) and part.label == region.prompt
        x0, y0, x1, y1 = seg.crop_region
        assert seg.cropped_image.shape == (1, y1 - y0, x1 - x0, 3)
        assert np.array_equal(seg.cropped_image[0], image[y0:y1, x0:x1])
    image[:] = 0  # the SEGS hold copies
    assert out.segs[0].cropped_image.any()


# ------------------------------------------------------------------------------ another pack's SAM


@pytest.fixture()
def owners_sam():
    return tiny_sam_module()


def test_adopted_sam_is_used_in_place_and_segments_like_the_file(owners_sam, tiny_sam_path, photo):
    from cielr_core.perception import load_sam

    pointers = {n: p.data_ptr() for n, p in owners_sam.named_parameters()}
    segmenter, adoption = adopt_sam(owners_sam)
    assert segmenter.model is owners_sam and adoption.copied_bytes == 0
    assert "nothing copied or moved" in adoption.text() and "vit_32x2" in adoption.source
    boxes = np.array([[100, 80, 400, 300], [500, 200, 700, 500]], np.float32)
    masks = segmenter.segment(photo, boxes)
    segmenter.to("meta")  # a memory manager asking: the owner's model stays where it is
    assert {n: p.data_ptr() for n, p in owners_sam.named_parameters()} == pointers
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in owners_sam.parameters())
    # the same weights through this pack's file loader give the same masks
    torch.save(owners_sam.state_dict(), tiny_sam_path.parent / "owner.pth")
    expected = load_sam(tiny_sam_path.parent / "owner.pth").segment(photo, boxes)
    assert masks.shape == (2,) + photo.shape[:2] and np.array_equal(masks, expected)


class DevicePolicy:
    """The interface of Impact's SAMWrapper (prepare_device before work, release_device after); the
    real one runs in test_interop_packs.py."""

    def __init__(self):
        self.calls = []

    def prepare_device(self):
        self.calls.append("prepare")

    def release_device(self):
        self.calls.append("release")


def test_adopted_sam_follows_its_owners_device_policy(owners_sam, photo):
    owners_sam.sam_wrapper = DevicePolicy()
    segmenter, adoption = adopt_sam(owners_sam)
    assert "owner's device policy (DevicePolicy)" in adoption.text()
    segmenter.segment(photo, np.array([[10, 10, 200, 200]], np.float32))
    assert owners_sam.sam_wrapper.calls == ["prepare", "release"]
    assert segmenter._cache is None  # the embedding does not outlive the model's stay on the device


def test_other_kinds_are_refused_by_name(owners_sam):
    with pytest.raises(InputError, match="SAM_MODEL input cannot be used.*it is a builtins.dict"):
        adopt_sam({"model": 1})
    hq = tiny_sam_module()
    hq.mask_decoder.hf_token = torch.nn.Embedding(1, 32)
    with pytest.raises(InputError, match="it is SAM-HQ"):
        adopt_sam(hq)
    mobile = tiny_sam_module()
    mobile.image_encoder = torch.nn.Conv2d(3, 32, 16, 16)
    with pytest.raises(InputError, match="its image encoder is a Conv2d"):
        adopt_sam(mobile)
    owners_sam.half()
    with pytest.raises(InputError, match="decoder is in torch.float16"):
        adopt_sam(owners_sam)
    with pytest.raises(InputError, match="GROUNDING_DINO_MODEL input cannot be used.*without backbone"):
        convert_groundingdino(tiny_sam_module())


# ------------------------------------------------------------------------------ the reference GroundingDINO


def test_converted_groundingdino_detects_like_the_file_loader(tiny_gdino, photo):
    """The live reference module (storyicon's kind) converts into the same transformers model the file
    loader makes from the same tensors: equal outputs, and its own tensors untouched."""
    from devkit.gdino_reference import assert_same_outputs, load_reference, raw_outputs

    file_detector = load_grounding_dino(*tiny_gdino)
    reference = load_reference(*tiny_gdino)
    owner = reference.model
    before = {n: (p.data_ptr(), p.detach().clone()) for n, p in owner.named_parameters()}
    detector, adoption = convert_groundingdino(owner)
    assert detector.tokenizer is owner.tokenizer
    assert adoption.copied_bytes == tensor_bytes(detector.model) > 0
    assert f"{adoption.copied_bytes / 2**20:.1f} MB" in adoption.text() and "converted once" in adoption.text()
    for n, p in owner.named_parameters():
        assert p.data_ptr() == before[n][0] and torch.equal(p, before[n][1])
    for d in (detector, file_detector, reference):  # a smaller input: the same comparison, seconds faster
        d.short_side, d.long_side = 320, 480
    labels = ["tv", "lamp", "sofa"]
    ours, files = raw_outputs(detector, photo, labels), raw_outputs(file_detector, photo, labels)
    for key in ours:
        assert torch.equal(ours[key], files[key]), key
    assert_same_outputs(ours, raw_outputs(reference, photo, labels))  # and the reference's own forward
    a = detector.detect(photo, labels, box_threshold=0.0, text_threshold=0.0)
    b = file_detector.detect(photo, labels, box_threshold=0.0, text_threshold=0.0)
    assert len(a) > 0 and a.labels == b.labels and np.array_equal(a.boxes, b.boxes)
