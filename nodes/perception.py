"""CIELRPerceive: labels -> boxes -> masks, as a raw scene plus an overlay preview."""

from __future__ import annotations

from cielr_core.settings import BOX_THRESHOLD as _BOX

BOX_THRESHOLD = _BOX.default

from . import inputs
from .base import CIELRNode
from .bridge import comfy_progress, single_image, to_image


class CIELRPerceive(CIELRNode):
    """Finds every instance of the given object names (GroundingDINO) and segments each one (SAM). Gives a raw
    scene: objects with ids, boxes and masks. Connect it to Build Scene for relations."""

    FUNCTION = "perceive"
    OUTPUTS = (("CIELR_SCENE", "scene"), ("IMAGE", "preview"))

    INPUTS = {"required": {
        "image": ("IMAGE", {"tooltip": "The photo to look at (one image; split batches first)."}),
        "detector": ("CIELR_DETECTOR", {"tooltip": "From CIELR GroundingDINO Loader."}),
        "segmenter": ("CIELR_SEGMENTER", {"tooltip": "From CIELR SAM Loader."}),
        "labels": ("STRING", {"multiline": True, "default": "tv, speaker, lamp, sofa, table",
                              "tooltip": "Object names to find, separated by commas or new lines. "
                                         "Connect CIELR Propose Labels to let an LLM choose them."}),
        "box_threshold": ("FLOAT", {"default": BOX_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "Minimum detector confidence for a box. Lower finds more, "
                                               "with more false boxes."}),
        "text_threshold": inputs.text_threshold(),
    }}

    def perceive(self, image, detector, segmenter, labels: str, box_threshold: float, text_threshold: float):
        from cielr_core.perception import perceive
        from cielr_core.scene import render_preview

        rgb = single_image(image, "CIELR Perceive")
        scene = perceive(rgb, detector.ready(), segmenter.ready(), labels, box_threshold=box_threshold,
                         text_threshold=text_threshold, progress=comfy_progress())
        return (scene, to_image(render_preview(rgb, scene)))


NODE_CLASS_MAPPINGS = {"CIELRPerceive": CIELRPerceive}
NODE_DISPLAY_NAME_MAPPINGS = {"CIELRPerceive": "CIELR Perceive"}
