"""Where each action edits: target masks, placement regions for ``add``, growing and feathering.

Masks here are bool H x W arrays (feathers are float32 in [0, 1]). Growing and feathering use an
octagonal structuring element (alternating 3 x 3 square and cross steps), a close and cheap stand-in
for a disk that needs no SciPy or OpenCV.

Feathering stays *inside* the grown mask: the weight is 0 outside it, rises from its boundary and
reaches 1 ``feather`` pixels in, so the outward edge of the blend is exactly the grown mask's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..plan import Action
from ..scene.masks import box_mask, check_mask
from ..scene.model import Box, Scene

# Placement region size relative to the anchor's box (width, height factors).
PLACE_SIZE = 0.6


@dataclass(frozen=True)
class Borders:
    """Which sides of a crop are the image's own border (beyond them there is nothing to blend with)."""

    left: bool = True
    top: bool = True
    right: bool = True
    bottom: bool = True


def _as_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]


def _step(t: torch.Tensor, square: bool) -> torch.Tensor:
    """One 3 x 3 dilation of a padded [1, 1, H, W] 0/1 tensor (square or cross shape), same size."""
    if square:
        return F.max_pool2d(t, 3, stride=1, padding=1)
    p = F.pad(t, (1, 1, 1, 1))
    return torch.maximum(torch.maximum(p[..., 1:-1, :-2], p[..., 1:-1, 2:]),
                         torch.maximum(torch.maximum(p[..., :-2, 1:-1], p[..., 2:, 1:-1]), t))


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate a bool mask by ``pixels`` (octagon); 0 returns a copy. Never reaches outside the array."""
    if pixels < 0:
        raise ValueError("grow must be >= 0")
    m = np.asarray(mask, dtype=bool)
    if pixels == 0 or not m.any():
        return m.copy()
    t = _as_tensor(m)
    for i in range(pixels):
        t = _step(t, square=i % 2 == 0)
    return t[0, 0].numpy() > 0.5


def _pad_outside(mask: torch.Tensor, borders: Borders, width: int) -> torch.Tensor:
    """Pad with 1 beyond image borders (the mask continues there) and 0 beyond crop edges."""
    h, w = mask.shape[-2:]
    out = torch.zeros((1, 1, h + 2 * width, w + 2 * width))
    out[..., width:width + h, width:width + w] = mask
    if borders.left:
        out[..., :, :width] = 1
    if borders.right:
        out[..., :, width + w:] = 1
    if borders.top:
        out[..., :width, :] = 1
    if borders.bottom:
        out[..., width + h:, :] = 1
    return out


def feather(grown: np.ndarray, pixels: int, borders: Borders = Borders()) -> np.ndarray:
    """Blend weight inside ``grown``: 0 outside, smoothstep from its edge to 1 at ``pixels`` deep.

    ``borders`` says which array sides are the image border: the mask is not faded towards those,
    since there are no original pixels beyond them to blend with.
    """
    if pixels < 0:
        raise ValueError("feather must be >= 0")
    g = np.asarray(grown, dtype=bool)
    if pixels == 0 or not g.any():
        return g.astype(np.float32)
    # inward distance by repeated erosion (= dilation of the complement), on a padded copy
    t = _pad_outside(_as_tensor(g), borders, pixels + 1)
    outside = 1.0 - t
    depth = torch.zeros_like(t)
    for i in range(pixels):
        depth += 1.0 - outside  # pixels still inside after i erosions
        outside = _step(outside, square=i % 2 == 0)
    depth += 1.0 - outside
    core = depth[0, 0, pixels + 1:pixels + 1 + g.shape[0], pixels + 1:pixels + 1 + g.shape[1]]
    ramp = (core / (pixels + 1)).clamp(0, 1)
    weight = ramp * ramp * (3 - 2 * ramp)  # smoothstep: a gentle start at the grown edge
    out = weight.numpy().astype(np.float32)
    out[~g] = 0.0
    return out


def targets_mask(scene: Scene, ids: list[int]) -> np.ndarray:
    """Union of the target objects' masks."""
    out = np.zeros((scene.height, scene.width), dtype=bool)
    for i in ids:
        out |= check_mask(scene.get(i).mask, scene.height, scene.width)
    return out


def _placement_box(anchor: Box, placement: str, width: int, height: int) -> Box:
    """A box for a new object placed relative to the anchor's box (not yet clipped)."""
    x0, y0, x1, y1 = anchor
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    pw, ph = PLACE_SIZE * w, PLACE_SIZE * h
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    gap = 0.05 * max(w, h)
    if placement == "on_top_of":  # resting on the anchor's top edge, a little overlap for contact
        return (cx - pw / 2, y0 - ph + 0.1 * h, cx + pw / 2, y0 + 0.1 * h)
    if placement == "above":
        return (cx - pw / 2, y0 - gap - ph, cx + pw / 2, y0 - gap)
    if placement == "below":
        return (cx - pw / 2, y1 + gap, cx + pw / 2, y1 + gap + ph)
    if placement == "left_of":
        return (x0 - gap - pw, y1 - ph, x0 - gap, y1)  # standing on the same ground line
    if placement == "right_of":
        return (x1 + gap, y1 - ph, x1 + gap + pw, y1)
    if placement == "in_front_of":  # nearer the camera: lower in the frame, over the anchor's base
        return (cx - pw / 2, y1 - 0.5 * ph, cx + pw / 2, y1 + 0.5 * ph)
    if placement == "behind":  # farther: peeking out above the anchor
        return (cx - pw / 2, y0 - 0.5 * ph, cx + pw / 2, y0 + 0.5 * ph)
    if placement == "inside":
        return (cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2)
    if placement == "near":  # beside the anchor, on whichever side has more room
        room_left, room_right = x0, width - x1
        return _placement_box(anchor, "left_of" if room_left > room_right else "right_of", width, height)
    raise ValueError(f"unknown placement {placement!r}")


def placement_mask(scene: Scene, anchor_id: int, placement: str) -> np.ndarray:
    """Region for ``add``: a box by the anchor, clipped to the image; ``behind`` leaves the anchor out,
    ``inside`` keeps only the anchor's own pixels."""
    anchor = scene.get(anchor_id)
    region = box_mask(_placement_box(anchor.box, placement, scene.width, scene.height), scene.width, scene.height)
    anchor_mask = check_mask(anchor.mask, scene.height, scene.width)
    if placement == "behind":
        region &= ~anchor_mask
    elif placement == "inside" and anchor_mask.any():
        region &= anchor_mask
    return region


def action_mask(action: Action, scene: Scene) -> np.ndarray:
    """The ungrown region an action edits: its targets' masks, or for ``add`` the placement region."""
    if action.op == "add":
        if action.anchor is None or action.placement is None:
            raise ValueError("an add action needs an anchor and a placement")
        return placement_mask(scene, action.anchor, action.placement)
    return targets_mask(scene, action.targets)
