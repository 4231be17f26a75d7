"""Editing: each plan action executed by masked inpainting, crop-and-stitch, with exact compositing.

Pixels outside the grown mask of every action keep their exact values: the composite writes only
grown pixels. ``execute_plan`` runs a plan with any ``InpaintEngine`` (``DiffusersEngine`` here, the
ComfyUI sampler engine in ``nodes``). Heavy libraries (diffusers) load only when an engine is built.
"""

from .candidates import Attempt
from .engine import InpaintEngine, InpaintRequest
from .execute import (
    OP_DENOISE,
    ActionReport,
    EditResult,
    EditSettings,
    PreparedAction,
    action_seed,
    check_image,
    execute_plan,
    feathered_mask,
    grown_mask,
    prepare,
)
from .handoff import SEG, ActionRegion, PlanSegs, plan_regions, plan_segs
from .regions import action_mask, feather, grow, placement_mask, targets_mask
from .stitch import Window, composite, crop_window, working_size
