"""CIELRVerifyEdit: look at an edit again (made by any chain) and say, per action, whether it worked."""

from __future__ import annotations

import json

from . import inputs
from .base import CIELRNode
from .bridge import comfy_progress, single_image, to_image

VERIFY_NODE = "CIELR Verify Edit"


class ReadyDetector:
    """A loaded detector or segmenter handed to the library: each use first asks ComfyUI's memory
    manager to put it back on its device (the diffusion model may have pushed it off in between)."""

    def __init__(self, managed):
        self.managed = managed

    def detect(self, *args, **kwargs):
        return self.managed.ready().detect(*args, **kwargs)

    def segment(self, *args, **kwargs):
        return self.managed.ready().segment(*args, **kwargs)


def verifier_for(detector, segmenter, llm, settings=None):
    """A library ``Verifier`` over the node's optional model inputs (None where not connected)."""
    from cielr_core.verify import Verifier, VerifySettings

    return Verifier(ReadyDetector(detector) if detector is not None else None,
                    ReadyDetector(segmenter) if segmenter is not None else None, llm,
                    settings or VerifySettings())


def model_inputs() -> dict:
    """The optional model inputs verification reads, shared by Inpaint Actions and Verify Edit."""
    return {
        "segmenter": ("CIELR_SEGMENTER", {"tooltip": "Optional, from CIELR SAM Loader: shapes are compared as "
                                                     "masks (mask IoU) instead of boxes."}),
        "llm": ("CIELR_LLM", {"tooltip": "Optional vision judge: a CIELR LLM with vision on sees each edited "
                                         "region before and after and scores it 1-5; its score joins the "
                                         "detector's. Without image support the detector checks decide alone "
                                         "(the report says so)."}),
    }


class CIELRVerifyEdit(CIELRNode):
    """Checks an edit made by any chain (Inpaint Actions, or your own sampler graph driven by Plan To Masks /
    Action Mask): per action, the detector looks at the region again (is the removed object gone, the new one
    there, the colour moved, the added object where it should be). Gives the verdicts as JSON with the
    evidence in words, one pass/fail, and a preview with failed regions in red."""

    FUNCTION = "verify"
    OUTPUTS = (("STRING", "verdict"), ("BOOLEAN", "passed"), ("IMAGE", "preview"))

    @classmethod
    def INPUT_TYPES(cls):
        from cielr_core.verify import VerifySettings

        d = VerifySettings()
        return {
            "required": {
                "image_before": ("IMAGE", {"tooltip": "The photo the scene was built from, before the edit."}),
                "image_after": ("IMAGE", {"tooltip": "The edited photo (same size)."}),
                "scene": inputs.planned_scene(),
                "plan": ("CIELR_PLAN", {"tooltip": "The plan that was executed; every action is checked."}),
                "detector": ("CIELR_DETECTOR", {"tooltip": "From CIELR GroundingDINO Loader: it looks at each "
                                                           "edited region again."}),
                "grow": ("INT", {"default": 8, "min": 0, "max": 512, "step": 1,
                                 "tooltip": "The grow the edit used: the region around each action where a new "
                                            "object may appear."}),
                "box_threshold": ("FLOAT", {"default": d.box_threshold, "min": 0.0, "max": 1.0, "step": 0.01,
                                            "tooltip": "Minimum detector confidence for the second look."}),
                "text_threshold": inputs.text_threshold(d.text_threshold),
            },
            "optional": model_inputs(),
        }

    def verify(self, image_before, image_after, scene, plan, detector, grow: int, box_threshold: float,
               text_threshold: float, segmenter=None, llm=None):
        from cielr_core.editing import EditSettings, check_image, grown_mask, prepare
        from cielr_core.errors import InputError
        from cielr_core.verify import VerifySettings, plan_report, verdict_preview

        before = single_image(image_before, VERIFY_NODE)
        after = single_image(image_after, VERIFY_NODE)
        if before.shape != after.shape:
            raise InputError(f"{VERIFY_NODE}: image_before is {before.shape[1]}x{before.shape[0]} but image_after is "
                             f"{after.shape[1]}x{after.shape[0]}; connect the edit of the same photo.")
        edit = EditSettings(grow=grow)
        check_image(before, scene)
        items = prepare(scene, plan, edit)  # checks the plan against the scene
        verifier = verifier_for(detector, segmenter, llm, VerifySettings(box_threshold=box_threshold,
                                                                        text_threshold=text_threshold))
        progress = comfy_progress().start(len(items))
        masks, verdicts = [], []
        for item in items:
            progress.check()
            masks.append(grown_mask(item.mask, edit))
            verdicts.append(verifier(before, after, item.action, scene, masks[-1]))
            progress.advance()
        report = plan_report(plan, scene, verdicts)
        return (json.dumps(report, indent=1), bool(report["passed"]),
                to_image(verdict_preview(after, masks, verdicts)))


NODE_CLASS_MAPPINGS = {"CIELRVerifyEdit": CIELRVerifyEdit}
NODE_DISPLAY_NAME_MAPPINGS = {"CIELRVerifyEdit": VERIFY_NODE}
