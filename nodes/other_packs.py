"""Doors to other packs' own types: a plan out as Impact Pack SEGS, and the SAM and GroundingDINO models
other packs already loaded in as the CIELR segmenter and detector (no second copy from disk)."""

from __future__ import annotations

import weakref
from typing import Any

from cielr_core.errors import InputError

from . import inputs
from .base import CIELRNode
from .bridge import single_image

REPORT = ("STRING", "report", "How the model is used: in place (nothing copied or moved) or converted once, with "
                              "the memory the copy takes.")


class Borrowed:
    """Another pack's model in the socket of a CIELR loader's output: ``ready()`` hands it over where its
    owner keeps it (ComfyUI's memory management is the owner's business, not ours)."""

    def __init__(self, core: Any):
        self.core = core

    def ready(self) -> Any:
        return self.core


class CIELRSegmenterFromSAMModel(CIELRNode):
    """Uses a SAM_MODEL another pack loaded (Impact Pack's SAMLoader, storyicon's SAMModelLoader: a
    segment_anything SAM) as the CIELR segmenter, in place: the same model on the device its owner chose, no
    second copy. Impact's AUTO device mode is followed (on the GPU only while it segments)."""

    FUNCTION = "adopt"
    OUTPUTS = (("CIELR_SEGMENTER", "segmenter", "For CIELR Perceive, Refine Scene, Scene From Boxes..."), REPORT)
    INPUTS = {"required": {
        "sam_model": ("SAM_MODEL", {"tooltip": "A segment_anything SAM (vit_b, vit_l or vit_h) from Impact Pack's "
                                               "SAMLoader or storyicon's SAMModelLoader. SAM-HQ, MobileSAM and "
                                               "EfficientSAM are other models and are refused."}),
    }}

    def adopt(self, sam_model):
        from cielr_core.perception.adopted import adopt_sam

        segmenter, adoption = adopt_sam(sam_model)
        return (Borrowed(segmenter), adoption.text())


_CONVERTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # the owner's module -> (Managed, Adoption)


class CIELRDetectorFromGroundingDINOModel(CIELRNode):
    """Uses a GROUNDING_DINO_MODEL another pack loaded (storyicon's GroundingDinoModelLoader: the reference
    GroundingDINO) as the CIELR detector. CIELR detects with transformers' GroundingDINO, so the model's
    weights are converted once (kept while the source model lives) and the report gives the memory the copy
    takes; the source model is not moved or changed."""

    FUNCTION = "adopt"
    OUTPUTS = (("CIELR_DETECTOR", "detector", "For CIELR Perceive, Refine Scene, Verify Edit..."), REPORT)
    INPUTS = {"required": {
        "grounding_dino_model": ("GROUNDING_DINO_MODEL", {
            "tooltip": "The GroundingDINO of storyicon's GroundingDinoModelLoader (SwinT-OGC or SwinB)."}),
    }}

    def adopt(self, grounding_dino_model):
        from cielr_core.perception.adopted import convert_groundingdino

        from .memory import manage

        owner = grounding_dino_model
        try:
            hit = _CONVERTED.get(owner)
        except TypeError:  # not weak-referenceable: not a torch module, refused below by name
            hit = None
        if hit is None:
            detector, adoption = convert_groundingdino(owner)
            hit = (manage(detector, "cpu" if adoption.device == "cpu" else "auto"), adoption)
            _CONVERTED[owner] = hit
        managed, adoption = hit
        return (managed, adoption.text())


class CIELRPlanToSEGS(CIELRNode):
    """The plan as Impact Pack SEGS, for its detailers (DetailerForEach and the rest) and SEGS tools: one SEG per
    action, with the action's mask (exactly where CIELR Inpaint Actions would edit), its crop region and box,
    and the action's prompt as its label. Impact Pack is not needed to run this node."""

    FUNCTION = "segs"
    OUTPUTS = (
        ("SEGS", "segs", "((height, width), [SEG, ...]), one SEG per action with a region, in plan order; label = "
                         "the action's prompt, confidence 1.0."),
        ("STRING", "report", "Each SEG's crop region, box and label, and the actions without a region."),
    )
    INPUTS = {
        "required": {
            "scene": inputs.planned_scene(),
            "plan": inputs.plan(),
            **inputs.region_inputs(),
            "context": inputs.context(),
            "background_prompt": inputs.background_prompt(),
        },
        "optional": {
            "image": ("IMAGE", {"tooltip": "Optional: the photo the scene was made from; each SEG then carries its "
                                           "crop of it (cropped_image), as Impact's detectors give it."}),
        },
    }

    def segs(self, scene, plan, grow: int, feather: int, context: int, background_prompt: str, image=None):
        from cielr_core.editing import EditSettings, plan_segs

        node = "CIELR Plan To SEGS"
        rgb = None
        if image is not None:
            rgb = single_image(image, node)
            if rgb.shape[:2] != (scene.height, scene.width):
                raise InputError(f"{node}: the image is {rgb.shape[1]}x{rgb.shape[0]} but the scene is "
                                 f"{scene.width}x{scene.height}; connect the image the scene was made from")
        settings = EditSettings(grow=grow, feather=feather, context=context, background_prompt=background_prompt)
        out = plan_segs(scene, plan, settings, rgb)
        return (out.as_segs(), out.text())


NODE_CLASS_MAPPINGS = {
    "CIELRPlanToSEGS": CIELRPlanToSEGS,
    "CIELRSegmenterFromSAMModel": CIELRSegmenterFromSAMModel,
    "CIELRDetectorFromGroundingDINOModel": CIELRDetectorFromGroundingDINOModel,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CIELRPlanToSEGS": "CIELR Plan To SEGS",
    "CIELRSegmenterFromSAMModel": "CIELR Segmenter From SAM_MODEL",
    "CIELRDetectorFromGroundingDINOModel": "CIELR Detector From GROUNDING_DINO_MODEL",
}
