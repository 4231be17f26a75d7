"""Doors to other packs' own types: a plan out as Impact Pack SEGS, and the SAM and GroundingDINO models
other packs already loaded in as the CIELR segmenter and detector (no second copy from disk)."""

from __future__ import annotations

import weakref

from comfy_api.latest import io

from cielr_core import settings as S

from .base import INTEROP, CIELRNode, Detector, Segmenter, Segs, out, socket, widget
from .bridge import single_image
from .inputs import plan_input, planned_scene
from .interop import _same_size

SamModel = io.Custom("SAM_MODEL")  # Impact Pack's SAMLoader, storyicon's SAMModelLoader
GroundingDinoModel = io.Custom("GROUNDING_DINO_MODEL")  # storyicon's GroundingDinoModelLoader

REPORT = out(io.String, "report", "How the model is used: in place (nothing copied or moved) or converted once, "
                                  "with the memory the copy takes.")


class CIELRSegmenterFromSAMModel(CIELRNode, title="CIELR Segmenter From SAM_MODEL", stage=INTEROP,
                                 aliases=("impact sam", "sam model", "use loaded sam")):
    """Uses a SAM_MODEL another pack loaded (Impact Pack's SAMLoader, storyicon's SAMModelLoader: a
    segment_anything SAM) as the CIELR segmenter, in place: the same model on the device its owner chose, no
    second copy. Impact's AUTO device mode is followed (on the GPU only while it segments)."""

    OUTPUTS = (out(Segmenter, "segmenter", "For CIELR Perceive, Refine Scene, Scene From Boxes..."), REPORT)
    INPUTS = (socket(SamModel, "sam_model", "A segment_anything SAM (vit_b, vit_l or vit_h) from Impact Pack's "
                                            "SAMLoader or storyicon's SAMModelLoader. SAM-HQ, MobileSAM and "
                                            "EfficientSAM are other models and are refused."),)

    @classmethod
    def execute(cls, sam_model) -> io.NodeOutput:
        from cielr_core.perception.adopted import adopt_sam

        # handed on as it is: its owner's memory management keeps it where it belongs
        segmenter, adoption = adopt_sam(sam_model)
        return io.NodeOutput(segmenter, adoption.text())


# the owner's module -> (Managed, Adoption): the copy lives exactly as long as the model it was made from
_CONVERTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class CIELRDetectorFromGroundingDINOModel(CIELRNode, title="CIELR Detector From GROUNDING_DINO_MODEL",
                                          stage=INTEROP, aliases=("grounding dino model", "use loaded groundingdino")):
    """Uses a GROUNDING_DINO_MODEL another pack loaded (storyicon's GroundingDinoModelLoader: the reference
    GroundingDINO) as the CIELR detector. CIELR detects with transformers' GroundingDINO, so the model's
    weights are converted once (kept while the source model lives) and the report gives the memory the copy
    takes; the source model is not moved or changed."""

    OUTPUTS = (out(Detector, "detector", "For CIELR Perceive, Refine Scene, Verify Edit..."), REPORT)
    INPUTS = (socket(GroundingDinoModel, "grounding_dino_model", "The GroundingDINO of storyicon's "
                                                                 "GroundingDinoModelLoader (SwinT-OGC or SwinB)."),)

    @classmethod
    def execute(cls, grounding_dino_model) -> io.NodeOutput:
        from cielr_core.perception.adopted import convert_groundingdino

        from .memory import OnDevice, manage

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
        return io.NodeOutput(OnDevice(managed), adoption.text())


class CIELRPlanToSEGS(CIELRNode, title="CIELR Plan To SEGS", stage=INTEROP,
                      aliases=("plan to segs", "impact detailer", "segs from plan")):
    """The plan as Impact Pack SEGS, for its detailers (DetailerForEach and the rest) and SEGS tools: one SEG per
    action, with the action's mask (exactly where CIELR Inpaint Actions would edit), its crop region and box,
    and the action's prompt as its label. Impact Pack is not needed to run this node."""

    OUTPUTS = (
        out(Segs, "segs", "((height, width), [SEG, ...]), one SEG per action with a region, in plan order; label = "
                          "the action's prompt, confidence 1.0."),
        out(io.String, "report", "Each SEG's crop region, box and label, and the actions without a region."),
    )
    INPUTS = (planned_scene(), plan_input(), widget(S.GROW), widget(S.FEATHER), widget(S.CONTEXT),
              widget(S.BACKGROUND_PROMPT),
              socket(io.Image, "image", "Optional: the photo the scene was made from; each SEG then carries its "
                                        "crop of it (cropped_image), as Impact's detectors give it.", optional=True))

    @classmethod
    def execute(cls, scene, plan, image=None, **values) -> io.NodeOutput:
        from cielr_core.editing import EditSettings, plan_segs

        rgb = None
        if image is not None:
            rgb = single_image(image, cls.TITLE)
            _same_size(scene.height, scene.width, rgb, cls.TITLE, "scene", "connect the image the scene was made from")
        out_segs = plan_segs(scene, plan, EditSettings.of(values), rgb)
        return io.NodeOutput(out_segs.as_segs(), out_segs.text())


NODES = (CIELRPlanToSEGS, CIELRSegmenterFromSAMModel, CIELRDetectorFromGroundingDINOModel)
