"""Test-only ComfyUI nodes that hand other packs' Python objects to CIELR through the real server.

``TestOnlyImpactSEGS`` builds SEGS the way Impact Pack does: ``((height, width), [SEG, ...])`` with SEG
a namedtuple of Impact's field names (its own class, so the reader must go by field, as it must with
Impact's class imported twice), each ``cropped_mask`` a float32 array covering its whole
``crop_region`` (x0, y0, x1, y1, end-exclusive ints). ``TestOnlyBBOX`` hands over a BBOX list as
Florence-2 and VLM packs do. The tests link this folder into custom_nodes; it is not shipped.
"""

import json
from collections import namedtuple

import numpy as np

SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                         "control_net_wrapper"], defaults=[None])


def _seg(item: dict) -> SEG:
    x0, y0, x1, y1 = item["crop_region"]
    bbox = item.get("bbox")
    if item.get("mask") == "none":
        return SEG(None, None, np.float32(item.get("confidence", 1.0)), [x0, y0, x1, y1], bbox, item["label"])
    crop = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for bx0, by0, bx1, by1 in item.get("filled", []):  # object pixels, in image coordinates
        crop[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = item.get("value", 1.0)
    mask = crop
    if item.get("mask") == "torch":  # MaskToSEGS-style batch masks are torch tensors [1, h, w]
        import torch

        mask = torch.from_numpy(crop)[None]
    return SEG(None, mask, np.float32(item.get("confidence", 1.0)), [x0, y0, x1, y1], bbox, item["label"])


class TestOnlyImpactSEGS:
    CATEGORY = "testing/cielr"
    RETURN_TYPES = ("SEGS",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"spec": ("STRING", {"multiline": True, "default": "{}"})}}

    def make(self, spec: str):
        data = json.loads(spec)
        return (((data["size"][0], data["size"][1]), [_seg(item) for item in data["segs"]]),)


class TestOnlyBBOX:
    CATEGORY = "testing/cielr"
    RETURN_TYPES = ("BBOX",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"boxes": ("STRING", {"default": "[]"})}}

    def make(self, boxes: str):
        return (json.loads(boxes),)


class TestOnlySaveTensor:
    """Writes a MASK or IMAGE tensor as it is (float32 .npy in the output folder): PNGs would round it to
    8 bits, and the interop tests compare masks pixel for pixel."""

    CATEGORY = "testing/cielr"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "tensor"})},
                "optional": {"mask": ("MASK",), "image": ("IMAGE",)}}

    def save(self, name: str, mask=None, image=None):
        import os
        import uuid

        import folder_paths

        file = f"{name}_{uuid.uuid4().hex[:8]}.npy"
        tensor = mask if mask is not None else image
        os.makedirs(folder_paths.get_output_directory(), exist_ok=True)
        np.save(os.path.join(folder_paths.get_output_directory(), file), tensor.detach().cpu().float().numpy())
        return {"ui": {"tensors": [file]}}


NODE_CLASS_MAPPINGS = {"TestOnlyImpactSEGS": TestOnlyImpactSEGS, "TestOnlyBBOX": TestOnlyBBOX,
                       "TestOnlySaveTensor": TestOnlySaveTensor}
