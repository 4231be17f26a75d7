"""Input specs that several CIELR nodes declare alike: one home for each, so their tooltips and
ranges stay the same everywhere (a fresh tuple per call: ComfyUI may annotate the dicts it gets)."""

from __future__ import annotations

from cielr_core import settings as S

BACKGROUND_PROMPT, RECOLOR_DENOISE = S.BACKGROUND_PROMPT.default, S.RECOLOR_DENOISE.default
TEXT_THRESHOLD = S.TEXT_THRESHOLD.default


def planned_scene() -> tuple:
    return ("CIELR_SCENE", {"tooltip": "The scene the plan was made for."})


def plan() -> tuple:
    return ("CIELR_PLAN", {"tooltip": "From CIELR Decompose or CIELR Plan From JSON."})


def text_threshold(default: float = TEXT_THRESHOLD) -> tuple:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.01,
                      "tooltip": "Minimum confidence that a box matches its label."})


def region_inputs() -> dict:
    """grow and feather, as the editing nodes and Plan To Masks take them."""
    return {
        "grow": ("INT", {"default": 8, "min": 0, "max": 512, "step": 1,
                         "tooltip": "Pixels the target masks are grown by before inpainting, so edges, shadows "
                                    "and halos are repainted too. Nothing outside the grown mask ever changes."}),
        "feather": ("INT", {"default": 8, "min": 0, "max": 512, "step": 1,
                            "tooltip": "Width in pixels of the soft blend, inside the grown mask: the new pixels "
                                       "fade in from the grown mask's edge. 0 = hard edge."}),
    }


def prompt_inputs(recolor_tip: str) -> dict:
    """negative, background_prompt and recolor_denoise, as Inpaint Actions and Plan To Masks take them."""
    return {
        "negative": ("STRING", {"default": "", "multiline": True,
                                "tooltip": "Negative prompt for every action (remove actions add the removed "
                                           "objects' labels to it)."}),
        "background_prompt": ("STRING", {"default": BACKGROUND_PROMPT, "multiline": True,
                                         "tooltip": "What a remove action paints when it has no prompt of its own."}),
        "recolor_denoise": ("FLOAT", {"default": RECOLOR_DENOISE, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": recolor_tip}),
    }
