"""Test-only ComfyUI nodes that hand other packs' Python objects to CIELR through the real server.

``TestOnlyImpactSEGS`` builds SEGS the way Impact Pack does: ``((height, width), [SEG, ...])`` with SEG
a namedtuple of Impact's field names (its own class, so the reader must go by field, as it must with
Impact's class imported twice), each ``cropped_mask`` a float32 array covering its whole
``crop_region`` (x0, y0, x1, y1, end-exclusive ints). ``TestOnlyBBOX`` hands over a BBOX list as
Florence-2 and VLM packs do. ``TestOnlySAM3Detect`` gives core SAM3 Detect's two outputs, built the
way upstream builds them (see its docstring). The tests link this folder into custom_nodes; it is
not shipped.
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


class TestOnlySAM3Detect:
    """Core SAM3 Detect's outputs for given detections (no SAM3 model can be had here): ``masks``, one mask per
    image (the union of its detections, as with individual_masks off), and ``bboxes`` of type BOUNDING_BOX, per
    image a list of dicts built by the same expression as upstream's SAM3_Detect.execute (comfyanonymous/ComfyUI,
    comfy_extras/nodes_sam3.py at commit 56c0ca35deea9d62710196de944dfdc59ea01122; the line is kept in
    tests/data/upstream/comfyui_sam3.txt, and a static test compares the two). ``detections``: JSON, per image a
    list of [x0, y0, x1, y1, score] (what the detector hands that expression); [[]] for an image where nothing
    was found."""

    CATEGORY = "testing/cielr"
    RETURN_TYPES = ("MASK", "BOUNDING_BOX")
    RETURN_NAMES = ("masks", "bboxes")
    FUNCTION = "detect"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "detections": ("STRING", {"default": "[[]]"})}}

    def detect(self, image, detections: str):
        import torch

        per_image = json.loads(detections)
        _, height, width, _ = image.shape
        all_bbox_dicts, all_masks = [], []
        for frame in per_image:
            frame_bbox_dicts = []
            mask = torch.zeros(height, width)
            for *xyxy, probability in frame:
                # upstream's kept_boxes row (x0, y0, x1, y1) and kept_scores entry: float32 tensors
                box, score = torch.tensor(xyxy, dtype=torch.float32), torch.tensor(probability, dtype=torch.float32)
                frame_bbox_dicts.append({  # upstream's expression, token for token
                    "x": float(box[0]), "y": float(box[1]),
                    "width": float(box[2] - box[0]), "height": float(box[3] - box[1]),
                    "score": float(score),
                })
                mask[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = 1.0
            all_bbox_dicts.append(frame_bbox_dicts)
            all_masks.append(mask)
        return (torch.stack(all_masks), all_bbox_dicts)


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
                       "TestOnlySAM3Detect": TestOnlySAM3Detect, "TestOnlySaveTensor": TestOnlySaveTensor}
