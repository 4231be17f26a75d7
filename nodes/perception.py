"""CIELRPerceive: labels -> boxes -> masks, as a raw scene plus an overlay preview."""

from __future__ import annotations

from comfy_api.latest import io

from cielr_core import settings as S

from .base import PERCEPTION, CIELRNode, Detector, Scene, Segmenter, out, socket, widget
from .bridge import comfy_progress, single_image, to_image


class CIELRPerceive(CIELRNode, title="CIELR Perceive", stage=PERCEPTION,
                    aliases=("detect and segment", "find objects", "grounded sam", "open vocabulary segmentation")):
    """Finds every instance of the given object names (GroundingDINO) and segments each one (SAM). Gives a raw
    scene: objects with ids, boxes and masks. Connect it to Build Scene for relations."""

    OUTPUTS = (
        out(Scene, "scene", "The raw scene: one object per instance found, with id, label, score, box and mask. "
                            "Connect CIELR Build Scene next for relations."),
        out(io.Image, "preview", "The photo with every object's mask, box, id and label drawn on it."),
    )

    INPUTS = (socket(io.Image, "image", "The photo to look at (one image; split batches first)."),
              socket(Detector, "detector", "From CIELR GroundingDINO Loader."),
              socket(Segmenter, "segmenter", "From CIELR SAM Loader."),
              widget(S.LABELS), widget(S.BOX_THRESHOLD), widget(S.TEXT_THRESHOLD))

    @classmethod
    def execute(cls, image, detector, segmenter, labels: str, box_threshold: float,
                text_threshold: float) -> io.NodeOutput:
        from cielr_core.perception import perceive
        from cielr_core.scene import render_preview

        rgb = single_image(image, cls.TITLE)
        scene = perceive(rgb, detector, segmenter, labels, box_threshold=box_threshold,
                         text_threshold=text_threshold, progress=comfy_progress())
        return io.NodeOutput(scene, to_image(render_preview(rgb, scene)))


NODES = (CIELRPerceive,)
