"""Oracle mode: the ground-truth masks as the plan's regions, so no perception and no LLM run."""

from __future__ import annotations

from ..plan import MAX_PROMPT, Action, Plan, validate_plan
from ..scene import Scene, build_scene, make_object
from ..scene.masks import mask_box
from .datasets import LoadedSample, SampleError, load_mask


def oracle_scene_and_plan(loaded: LoadedSample, threshold: int = 127) -> tuple[Scene, Plan]:
    """A scene of one object per ground-truth mask file and a plan that repaints each inside its mask.

    The prompt is the sample's CLIP target text for that mask (the i-th text for the i-th mask when
    the counts match, else all texts joined); a sample without target text gets a remove action.
    """
    sample = loaded.sample
    h, w = loaded.image.shape[:2]
    if len(sample.mask_paths) == 1:
        masks = [loaded.mask]
    else:
        masks = [load_mask(p, size=(w, h), threshold=threshold) for p in sample.mask_paths]
    per_mask = len(sample.targets) == len(masks)
    objects, actions = [], []
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        text = (sample.targets[i] if per_mask else sample.target_text).strip()[:MAX_PROMPT]
        obj_id = len(objects) + 1
        objects.append(make_object(obj_id, text or "target region", 1.0, mask_box(mask), mask))
        if text:
            actions.append(Action(op="replace", targets=[obj_id], prompt=text))
        else:
            actions.append(Action(op="remove", targets=[obj_id]))
    if not objects:
        raise SampleError(sample.id, "every ground-truth mask is empty: there is no region to edit")
    scene = build_scene(Scene(w, h, objects))
    return scene, validate_plan(Plan(actions=actions), scene)
