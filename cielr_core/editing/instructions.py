"""Actions phrased as instructions, for instruction-edit models (Flux Kontext, Qwen-Image-Edit, Flux.2).

Those models see the crop itself as a reference and are trained on commands ("remove the speaker,
show the wall behind it"), not on descriptions of the result ("a wall").
"""

from __future__ import annotations

from ..plan import Action
from ..scene.model import Scene

PLACEMENT_WORDS = {"on_top_of": "on top of", "left_of": "to the left of", "right_of": "to the right of",
                   "above": "above", "below": "below", "in_front_of": "in front of", "behind": "behind",
                   "inside": "inside", "near": "next to"}


def _labels(scene: Scene, ids: list[int]) -> str:
    return " and the ".join(dict.fromkeys(scene.get(i).label for i in ids))


def instruction(action: Action, scene: Scene, background: str) -> str:
    """One action as an edit instruction; ``background`` is what a remove without a prompt shows
    ("" = the surroundings continued)."""
    what = action.prompt.strip()
    if action.op == "add":
        return f"add {what} {PLACEMENT_WORDS[action.placement]} the {scene.get(action.anchor).label}"
    targets = _labels(scene, action.targets)
    if action.op == "remove":
        shown = what or background
        return (f"remove the {targets}, show {shown} behind it" if shown
                else f"remove the {targets}, continue the background seamlessly behind it")
    if action.op == "replace":
        return f"replace the {targets} with {what}"
    return f"change the color of the {targets}: {what}; keep its shape"
