"""Editing nodes: run a plan by masked inpainting (crop, sample, stitch), one action's mask, a typed plan."""

from __future__ import annotations

import dataclasses

from comfy_api.latest import io

from cielr_core import settings as S
from cielr_core.errors import InputError

from . import comfy_internals as comfy
from .base import EDITING, REASONING, CIELRNode, Detector, Plan, Scene, choice, out, socket, widget
from .bridge import cancel_only, mask_tensor, single_image, to_image
from .inputs import DENOISE, NEGATIVE, REGION, model_inputs, plan_input, planned_scene


class CIELRPlanFromJSON(CIELRNode, title="CIELR Plan From JSON", stage=REASONING,
                        aliases=("manual plan", "typed plan", "edit plan by hand", "json plan")):
    """A plan typed or edited by hand, as JSON: {"actions": [{"op": "remove|replace|recolor|add", "targets":
    [ids], "prompt": "...", "anchor": id, "placement": "left_of", "strength": 0.6}]}. Checked against the
    scene; every problem is named."""

    OUTPUTS = (out(Plan, "plan", "The checked plan, for Inpaint Actions, Plan To Masks, Action Mask and Verify "
                                 "Edit."),)

    INPUTS = (
        socket(Scene, "scene", "The scene whose object ids the plan names (from Build Scene or Refine Scene; "
                               "its json output shows the ids)."),
        widget(S.PLAN_JSON),
    )

    @classmethod
    def execute(cls, scene, plan_json: str) -> io.NodeOutput:
        from cielr_core.plan import plan_from_json

        return io.NodeOutput(plan_from_json(plan_json, scene))


class CIELRActionMask(CIELRNode, title="CIELR Action Mask", stage=EDITING,
                      aliases=("mask of action", "inpaint mask", "region mask")):
    """The mask and prompt of one plan action, to drive any sampler graph of your own (e.g. Set Latent Noise
    Mask or InpaintModelConditioning, then KSampler with this denoise)."""

    OUTPUTS = (
        out(io.Mask, "mask", f"Where the action edits: {REGION}."),
        out(io.String, "prompt", "What the region should show afterwards (remove: the background prompt)."),
        out(io.String, "negative", f"The negative prompt ({NEGATIVE})."),
        out(io.Float, "denoise", f"The action's denoise: {DENOISE}."),
    )

    INPUTS = (planned_scene(), plan_input(), widget(S.ACTION_INDEX), widget(S.GROW), widget(S.FEATHER),
              widget(S.BACKGROUND_PROMPT))

    @classmethod
    def execute(cls, scene, plan, index: int, grow: int, feather: int, background_prompt: str) -> io.NodeOutput:
        from cielr_core.editing import EditSettings, feathered_mask, prepare

        if not 1 <= index <= len(plan.actions):
            raise InputError(f"{cls.TITLE}: index {index} is out of range; the plan has "
                             f"{len(plan.actions)} action(s), numbered from 1.")
        settings = EditSettings(grow=grow, feather=feather, background_prompt=background_prompt)
        item = prepare(scene, plan, settings)[index - 1]
        return io.NodeOutput(mask_tensor(feathered_mask(item.mask, settings)), item.prompt, item.negative,
                             item.denoise)


class CIELRInpaintActions(CIELRNode, title="CIELR Inpaint Actions", stage=EDITING,
                          aliases=("inpaint plan", "edit image", "crop and stitch", "masked inpainting")):
    """Runs the plan with your checkpoint: per action, in order, the target region is cropped with some
    context, inpainted at the working size and stitched back. Pixels outside the output mask are exactly the
    input's. The conditioning follows the loaded model's family: inpaint conditioning for inpainting models,
    distilled guidance for Flux, the crop as reference for edit models."""

    OUTPUTS = (
        out(io.Image, "image", "The edited photo: every pixel outside the mask output is exactly the input's."),
        out(io.Mask, "mask", "Every pixel the edit may have changed (the union of the actions' grown masks)."),
        out(io.Image, "previews", "The running result after each action, one image per action (also shown on "
                                  "the node)."),
        out(io.String, "report", "Per action: window, working size, seed, denoise, changed pixels and time, then "
                                 "the verdicts of the verification (with a detector connected)."),
    )

    @classmethod
    def inputs(cls):
        return [
            socket(io.Image, "image", "The photo the scene was built from (one image)."),
            socket(Scene, "scene", "The scene from Build Scene or Refine Scene."),
            plan_input(),
            socket(io.Model, "model", "The diffusion model: SD1.5, SDXL, SD3, Flux.1 (dev, Fill, Kontext), Flux.2, "
                                      "Qwen-Image(-Edit), Z-Image, Chroma, HiDream... Inpainting models (SD/SDXL "
                                      "inpainting, Flux Fill) and edit models work best."),
            socket(io.Clip, "clip", "The text encoder of the same checkpoint."),
            socket(io.Vae, "vae", "The VAE of the same checkpoint."),
            widget(S.SAMPLING_SEED), widget(S.STEPS), widget(S.CFG),
            choice("sampler_name", comfy.sampler_names(), "The sampling algorithm."),
            choice("scheduler", comfy.scheduler_names(), "The noise schedule."),
            widget(S.GROW), widget(S.FEATHER), widget(S.CONTEXT), widget(S.WORKING_SIZE), widget(S.NEGATIVE),
            widget(S.BACKGROUND_PROMPT), widget(S.RECOLOR_DENOISE),
            # verification and best of N (optional, after every other input; defaults keep one sample)
            socket(Detector, "detector", "Optional, from CIELR GroundingDINO Loader: each action is looked at "
                   "again (removed object gone? new one there? colour moved?) and the report gives the verdict and "
                   "why. Needed to choose between candidates; without it the report says 'not verified'.",
                   optional=True),
            *model_inputs(),
            widget(S.CANDIDATES, optional=True), widget(S.RETRIES, optional=True),
            widget(S.GUIDANCE, optional=True), widget(S.EDIT_MODE, optional=True),
            # custom sampling, as SamplerCustomAdvanced takes it; each replaces only its own part
            socket(io.Sampler, "sampler", "Optional, from KSamplerSelect or any sampler node: every action samples "
                                          "with it instead of sampler_name.", optional=True),
            socket(io.Sigmas, "sigmas", "Optional, from BasicScheduler or any scheduler node: the noise levels of a "
                                        "full denoise, instead of steps and scheduler. An action with a lower denoise "
                                        "(recolor, its own strength) samples the last steps x denoise of them, as "
                                        "SplitSigmasDenoise cuts them.", optional=True),
            socket(io.Guider, "guider", "Optional, from CFGGuider or any guider node: every action samples through it "
                                        "instead of cfg. Its positive and negative are replaced by each action's "
                                        "prompts (with the conditioning the model family needs); its model patches, "
                                        "cfg and other conditionings are kept. Build it from the same MODEL.",
                   optional=True),
        ]

    @classmethod
    def execute(cls, image, scene, plan, model, clip, vae, detector=None, segmenter=None, llm=None, sampler=None,
                sigmas=None, guider=None, **values) -> io.NodeOutput:
        from cielr_core.editing import check_image, prepare
        from cielr_core.editing.engine import SamplerSettings
        from cielr_core.pipeline import PipelineSettings, edit_stage

        from .comfy_engine import ComfyEngine, StepPreview
        from .custom_sampling import CustomSampling

        rgb = single_image(image, cls.TITLE)
        # everything about the plan and the models is checked before the first sample
        custom = CustomSampling(sampler, sigmas, guider)
        engine = ComfyEngine(model, clip, vae, SamplerSettings.of(values), custom=custom)
        settings = dataclasses.replace(PipelineSettings.of(values), verify=detector is not None,
                                       judge=llm is not None)
        check_image(rgb, scene)
        prepared = prepare(scene, plan, settings.edit)
        steps = sum(engine.steps_for(item.denoise) for item in prepared if not item.empty)
        samples = settings.edit.candidates if detector is not None else 1  # retries, if any, run past the bar
        engine.preview = StepPreview(model, steps * samples)
        result = edit_stage(rgb, scene, plan, engine, settings=settings, detector=detector, segmenter=segmenter,
                            llm=llm, progress=cancel_only(), prepared=prepared)
        previews = to_image(result.previews)
        report = engine.describe() + "\n" + result.report + "\n\nverdicts:\n" + result.verdict_table()
        return io.NodeOutput(to_image(result.image), mask_tensor(result.mask), previews, report,
                             ui=cls.preview(previews))


NODES = (CIELRPlanFromJSON, CIELRInpaintActions, CIELRActionMask)
