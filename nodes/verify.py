"""CIELRVerifyEdit: look at an edit again (made by any chain) and say, per action, whether it worked."""

from __future__ import annotations

import json

from comfy_api.latest import io

from cielr_core import settings as S

from .base import EDITING, CIELRNode, Detector, Plan, out, socket, widget
from .bridge import comfy_progress, single_image, to_image
from .inputs import model_inputs, planned_scene


class CIELRVerifyEdit(CIELRNode, title="CIELR Verify Edit", stage=EDITING,
                      aliases=("check edit", "did the edit work", "edit verdict", "quality check")):
    """Checks an edit made by any chain (Inpaint Actions, or your own sampler graph driven by Plan To Masks /
    Action Mask): per action, the detector looks at the region again (is the removed object gone, the new one
    there, the colour moved, the added object where it should be). Gives the verdicts as JSON with the
    evidence in words, one pass/fail, and a preview with failed regions in red."""

    OUTPUTS = (
        out(io.String, "verdict", "The verdicts as JSON: overall status and score, then per action its checks and "
                                  "the evidence in words."),
        out(io.Boolean, "passed", "True only when every action was verified and passed."),
        out(io.Image, "preview", "The edited photo with failed regions tinted and outlined in red, passed ones "
                                 "lightly green."),
    )

    INPUTS = (socket(io.Image, "image_before", "The photo the scene was built from, before the edit."),
              socket(io.Image, "image_after", "The edited photo (same size)."),
              planned_scene(),
              socket(Plan, "plan", "The plan that was executed; every action is checked."),
              socket(Detector, "detector", "From CIELR GroundingDINO Loader: it looks at each edited region again."),
              widget(S.VERIFY_GROW), widget(S.BOX_THRESHOLD), widget(S.TEXT_THRESHOLD), *model_inputs())

    @classmethod
    def execute(cls, image_before, image_after, scene, plan, detector, grow: int, box_threshold: float,
                text_threshold: float, segmenter=None, llm=None) -> io.NodeOutput:
        from cielr_core.editing import EditSettings
        from cielr_core.verify import Verifier, VerifySettings, verify_plan

        before = single_image(image_before, cls.TITLE)
        after = single_image(image_after, cls.TITLE)
        looks = VerifySettings(box_threshold=box_threshold, text_threshold=text_threshold)
        found = verify_plan(before, after, scene, plan, Verifier(detector, segmenter, llm, looks),
                            EditSettings(grow=grow), progress=comfy_progress())
        report = found.report(plan, scene)
        return io.NodeOutput(json.dumps(report, indent=1), bool(report["passed"]), to_image(found.preview(after)))


NODES = (CIELRVerifyEdit,)
