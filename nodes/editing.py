"""Editing nodes: run a plan by masked inpainting (crop, sample, stitch), one action's mask, a typed plan."""

from __future__ import annotations

import numpy as np
import torch

from cielr_core import settings as S
from cielr_core.errors import InputError

from . import inputs
from .base import CIELRNode
from .bridge import single_image, ui_images
from .verify import model_inputs, verifier_for

EXAMPLE_PLAN = '{"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}]}'
MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """H x W float -> MASK [1, H, W] float32."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]


def _image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 float32 -> IMAGE [1, H, W, 3], the same values bit for bit."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))[None]


def _cancel_only():
    """Cancel between actions; the progress bar is driven per sampling step by the engine."""
    import comfy.model_management

    from cielr_core.progress import Progress

    return Progress(on_check=comfy.model_management.throw_exception_if_processing_interrupted)


def _preview_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# --- verification and best of N (optional, after every other input; defaults keep one sample) ----

def _verify_inputs() -> dict:
    
    return {
        "detector": ("CIELR_DETECTOR", {"tooltip": "Optional, from CIELR GroundingDINO Loader: each action is "
                                                   "looked at again (removed object gone? new one there? colour "
                                                   "moved?) and the report gives the verdict and why. Needed to "
                                                   "choose between candidates; without it the report says "
                                                   "'not verified'."}),
        **model_inputs(),
        "candidates": ("INT", {"default": 1, "min": 1, "max": S.CANDIDATES.max,
                               "tooltip": "Samples per action (seeds seed + k); the one with the best verdict is "
                                          "kept. 1 = one sample, no extra cost. Needs the detector."}),
        "retries": ("INT", {"default": 0, "min": 0, "max": S.RETRIES.max,
                            "tooltip": "When every candidate of an action failed: rounds that grow the mask, raise "
                                       "a recolor's denoise and strengthen the prompt, then sample the candidates "
                                       "again. At most candidates x (1 + retries) samples per action."}),
    }


class CIELRPlanFromJSON(CIELRNode):
    """A plan typed or edited by hand, as JSON: {"actions": [{"op": "remove|replace|recolor|add", "targets":
    [ids], "prompt": "...", "anchor": id, "placement": "left_of", "strength": 0.6}]}. Checked against the
    scene; every problem is named."""

    FUNCTION = "parse"
    OUTPUTS = (("CIELR_PLAN", "plan"),)

    INPUTS = {"required": {
        "scene": ("CIELR_SCENE", {"tooltip": "The scene whose object ids the plan names (from Build Scene or "
                                             "Refine Scene; its json output shows the ids)."}),
        "plan_json": ("STRING", {"multiline": True, "default": EXAMPLE_PLAN,
                                 "tooltip": "The plan as JSON: an object with an 'actions' list, or just the list. "
                                            "Ops: remove, replace, recolor (targets + prompt), add (anchor + "
                                            "placement + prompt). Optional strength 0..1 overrides the denoise."}),
    }}

    def parse(self, scene, plan_json: str):
        from cielr_core.plan import plan_from_json

        return (plan_from_json(plan_json, scene),)


class CIELRActionMask(CIELRNode):
    """The mask and prompt of one plan action, to drive any sampler graph of your own (e.g. Set Latent Noise
    Mask or InpaintModelConditioning, then KSampler with this denoise)."""

    FUNCTION = "mask"
    OUTPUTS = (("MASK", "mask"), ("STRING", "prompt"), ("STRING", "negative"), ("FLOAT", "denoise"))

    INPUTS = {"required": {
        "scene": inputs.planned_scene(),
        "plan": inputs.plan(),
        "index": ("INT", {"default": 1, "min": 1, "max": 64,
                          "tooltip": "Which action: 1 = the first, as plan messages count them."}),
        **inputs.region_inputs(),
        "background_prompt": ("STRING", {"default": S.BACKGROUND_PROMPT.default, "multiline": True,
                                         "tooltip": "The prompt a remove action without its own prompt uses."}),
    }}

    def mask(self, scene, plan, index: int, grow: int, feather: int, background_prompt: str):
        from cielr_core.editing import EditSettings, feathered_mask, prepare

        if not 1 <= index <= len(plan.actions):
            raise InputError(f"CIELR Action Mask: index {index} is out of range; the plan has "
                             f"{len(plan.actions)} action(s), numbered from 1.")
        settings = EditSettings(grow=grow, feather=feather, background_prompt=background_prompt)
        item = prepare(scene, plan, settings)[index - 1]
        return (_mask_tensor(feathered_mask(item.mask, settings)), item.prompt, item.negative, item.denoise)


class CIELRInpaintActions(CIELRNode):
    """Runs the plan with your checkpoint: per action, in order, the target region is cropped with some
    context, inpainted at the working size and stitched back. Pixels outside the output mask are exactly the
    input's. The conditioning follows the loaded model's family: inpaint conditioning for inpainting models,
    distilled guidance for Flux, the crop as reference for edit models."""

    FUNCTION = "edit"
    OUTPUTS = (("IMAGE", "image"), ("MASK", "mask"), ("IMAGE", "previews"), ("STRING", "report"))

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        from cielr_core.settings import EDIT_MODES

        return {"required": {
            "image": ("IMAGE", {"tooltip": "The photo the scene was built from (one image)."}),
            "scene": ("CIELR_SCENE", {"tooltip": "The scene from Build Scene or Refine Scene."}),
            "plan": inputs.plan(),
            "model": ("MODEL", {"tooltip": "The diffusion model: SD1.5, SDXL, SD3, Flux.1 (dev, Fill, Kontext), "
                                           "Flux.2, Qwen-Image(-Edit), Z-Image, Chroma, HiDream... Inpainting "
                                           "models (SD/SDXL inpainting, Flux Fill) and edit models work best."}),
            "clip": ("CLIP", {"tooltip": "The text encoder of the same checkpoint."}),
            "vae": ("VAE", {"tooltip": "The VAE of the same checkpoint."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                             "tooltip": "Action n samples with seed + n - 1, so a one-action plan matches a KSampler "
                                        "with this seed."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "Sampling steps per action."}),
            "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Classifier-free guidance: how strongly each action follows its prompt."}),
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"tooltip": "The sampling algorithm."}),
            "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"tooltip": "The noise schedule."}),
            **inputs.region_inputs(),
            "context": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 1,
                                "tooltip": "Pixels of surroundings around each grown mask that the model sees. "
                                           "More context blends better; the crop is what gets scaled."}),
            "working_size": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 8,
                                     "tooltip": "Each crop is scaled to about working_size x working_size pixels "
                                                "(keeping its shape, sides multiples of what the VAE and the model's "
                                                "patches need) for sampling. 0 = auto: 512 for SD1.5-class models, "
                                                "1024 for SDXL, SD3, Flux, Qwen-Image and Z-Image."}),
            **inputs.prompt_inputs("Denoise for recolor actions: lower keeps the object's shape. Remove, replace "
                                   "and add use 1.0; an action's own strength overrides both."),
        }, "optional": {
            **_verify_inputs(),
            "guidance": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                   "tooltip": "Distilled guidance, for models that read it (Flux.1 dev/Kontext, "
                                              "Flux Fill, Flux.2), as the FluxGuidance node sets it. 0 = auto: the "
                                              "family's default (Flux.1 3.5, Fill 30, Flux.2 4). Other families "
                                              "ignore it; use cfg 1 with these models."}),
            "edit_mode": (list(EDIT_MODES), {"default": "auto",
                                             "tooltip": "auto: inpaint (with inpaint conditioning for inpainting "
                                                        "models), or instruction edit where every model of the "
                                                        "family edits from a reference (Flux.2). 'instruction "
                                                        "edit': the crop goes in as a reference latent and each "
                                                        "action is phrased as a command (\"remove the speaker, show "
                                                        "the wall behind it\"): use it with Flux Kontext and "
                                                        "Qwen-Image-Edit, whose weights look like Flux.1 dev and "
                                                        "Qwen-Image. 'inpaint': never a reference."}),
        }}

    def edit(self, image, scene, plan, model, clip, vae, seed: int, steps: int, cfg: float, sampler_name: str,
             scheduler: str, grow: int, feather: int, context: int, working_size: int, negative: str,
             background_prompt: str, recolor_denoise: float,
             detector=None, segmenter=None, llm=None, candidates: int = 1, retries: int = 0,
             guidance: float = 0.0, edit_mode: str = "auto"):
        from cielr_core.editing import EditSettings, check_image, execute_plan, prepare
        from cielr_core.editing.engine import SamplerSettings

        from .comfy_engine import ComfyEngine, StepPreview

        rgb = single_image(image, "CIELR Inpaint Actions")
        # everything about the plan and the models is checked before the first sample
        engine = ComfyEngine(model, clip, vae, SamplerSettings(steps, cfg, sampler_name, scheduler, guidance,
                                                               edit_mode))
        settings = EditSettings(seed=seed, grow=grow, feather=feather, context=context,
                                working_size=working_size or engine.family.working_size,
                                background_prompt=background_prompt, negative=negative,
                                recolor_denoise=recolor_denoise, candidates=candidates, retries=retries)
        check_image(rgb, scene)
        prepared = prepare(scene, plan, settings)
        active = sum(not item.empty for item in prepared)
        verifier = verifier_for(detector, segmenter, llm) if detector is not None or llm is not None else None
        samples = candidates if detector is not None else 1  # retries, when they happen, run past the bar
        engine.preview = StepPreview(model, active * steps * samples)
        result = execute_plan(rgb, scene, plan, engine, settings, progress=_cancel_only(), verifier=verifier,
                              prepared=prepared)
        previews = torch.cat([_image_tensor(p) for p in result.previews])
        ui = {"images": [ui_images(_preview_uint8(p), "cielr_action")["images"][0] for p in result.previews]}
        report = engine.describe() + "\n" + result.report + "\n\nverdicts:\n" + result.verdict_table()
        return {"ui": ui, "result": (_image_tensor(result.image), _mask_tensor(result.mask), previews, report)}


NODE_CLASS_MAPPINGS = {
    "CIELRPlanFromJSON": CIELRPlanFromJSON,
    "CIELRInpaintActions": CIELRInpaintActions,
    "CIELRActionMask": CIELRActionMask,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CIELRPlanFromJSON": "CIELR Plan From JSON",
    "CIELRInpaintActions": "CIELR Inpaint Actions",
    "CIELRActionMask": "CIELR Action Mask",
}
