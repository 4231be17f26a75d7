"""Sockets and output tooltips that several CIELR nodes declare alike: one home for each, so they say
the same everywhere (settings with widgets come from ``cielr_core.settings`` through ``base.widget``)."""

from __future__ import annotations

from .base import LLM, Plan, Scene, Segmenter, socket

# what each plan action hands to a sampler graph of one's own (Action Mask, Plan To Masks)
REGION = "exactly the blend weight CIELR Inpaint Actions uses (grown, then feathered inside the grown edge)"
NEGATIVE = "a remove action adds what it removes"
DENOISE = "remove, replace and add 1.0, recolor lower, or the action's own strength"


def planned_scene():
    return socket(Scene, "scene", "The scene the plan was made for.")


def plan_input():
    return socket(Plan, "plan", "From CIELR Decompose or CIELR Plan From JSON.")


def model_inputs() -> list:
    """The optional models verification reads besides the detector (Inpaint Actions, Verify Edit)."""
    return [
        socket(Segmenter, "segmenter", "Optional, from CIELR SAM Loader: shapes are compared as masks (mask IoU) "
                                       "instead of boxes.", optional=True),
        socket(LLM, "llm", "Optional vision judge: a CIELR LLM with vision on sees each edited region before and "
                           "after and scores it 1-5; its score joins the detector's. Without image support the "
                           "detector checks decide alone (the report says so).", optional=True),
    ]
