"""Conversions between ComfyUI's types and the library's, plus progress and cancel hooks."""

from __future__ import annotations

import numpy as np
import torch

from cielr_core.errors import InputError
from cielr_core.images import rgb_channels
from cielr_core.progress import Progress
from cielr_core.scene.external import BBOX_DICT_KEYS
from cielr_core.settings import BOX_FORMATS


def single_image(image: torch.Tensor, node: str) -> np.ndarray:
    """A photo: IMAGE [1, H, W, C] float -> H x W x 3 float, the same values (a copy, so the input stays
    untouched). Channels are normalised here, where the photo enters: alpha is dropped and grey is
    repeated, so every stage after this one sees RGB."""
    try:
        return rgb_channels(single_map(image, node))
    except InputError as e:
        raise InputError(f"{node}: {e}") from None


def single_map(image: torch.Tensor, node: str) -> np.ndarray:
    """A map (a depth map) as it is: IMAGE [1, H, W, C] float -> H x W x C float, a copy."""
    if image.ndim != 4:
        raise InputError(f"{node}: expected an IMAGE of shape [batch, height, width, channels], "
                         f"got {tuple(image.shape)}")
    if image.shape[0] != 1:
        raise InputError(f"{node} works on one image at a time, but got a batch of {image.shape[0]}. "
                         "Pick one with ComfyUI's 'Image From Batch' node, or run the graph once per image.")
    return image[0].detach().to("cpu", torch.float32).numpy().copy()


def to_image(rgb: np.ndarray) -> torch.Tensor:
    """H x W x C (or N x H x W x C) pixels -> IMAGE [N, H, W, C] float32: uint8 scaled to [0, 1], floats
    kept bit for bit (an edited photo's untouched pixels stay exactly the input's)."""
    values = np.ascontiguousarray(rgb)
    tensor = torch.from_numpy(values)
    tensor = tensor.to(torch.float32).div(255.0) if values.dtype == np.uint8 else tensor.to(torch.float32)
    return tensor if tensor.ndim == 4 else tensor.unsqueeze(0)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """One H x W mask (bool or float) -> MASK [1, H, W] float32."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]


def comfy_progress() -> Progress:
    """A Progress that drives the node's progress bar and stops when the user presses cancel."""
    from . import comfy_internals as comfy

    bar = comfy.progress_bar(1)
    return Progress(on_advance=lambda done, total: bar.update_absolute(done, total),
                    on_check=comfy.check_interrupted)


def cancel_only() -> Progress:
    """A Progress that only stops when the user presses cancel (the bar is driven elsewhere)."""
    from . import comfy_internals as comfy

    return Progress(on_check=comfy.check_interrupted)


# ---------------------------------------------------------------- other packs' masks, boxes and SEGS

def mask_batch(mask: torch.Tensor, node: str) -> np.ndarray:
    """MASK [N, H, W] (or one [H, W] mask) -> N x H x W float32, a copy (the input stays untouched)."""
    m = mask
    if not isinstance(m, torch.Tensor):
        raise InputError(f"{node}: expected a MASK tensor, got {type(m).__name__}")
    if m.ndim == 4 and m.shape[-1] == 1:  # a few packs hand masks over as [N, H, W, 1]
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise InputError(f"{node}: expected a MASK batch of shape [count, height, width], got {tuple(mask.shape)}")
    return m.detach().to("cpu", torch.float32).numpy().copy()


def masks_tensor(masks, height: int, width: int) -> torch.Tensor:
    """N masks (H x W, bool or float) -> MASK [N, H, W] float32; no masks gives one empty mask, since
    most nodes that take a MASK cannot handle a batch of none."""
    if len(masks) == 0:
        return torch.zeros((1, height, width), dtype=torch.float32)
    return torch.from_numpy(np.stack([np.asarray(m, dtype=np.float32) for m in masks]))




def _box_values(item) -> list[float] | None:
    """Four numbers from a box given as a list, tuple, array, tensor or {"bbox": [...]} dict."""
    if isinstance(item, dict):
        item = next((item[k] for k in BBOX_DICT_KEYS if k in item), None)
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    try:
        values = np.asarray(item, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return values.tolist() if values.size == 4 else None


def _is_box(item) -> bool:
    if isinstance(item, dict):
        return any(k in item for k in BBOX_DICT_KEYS)
    return (isinstance(item, (list, tuple)) and len(item) == 4
            and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in item))


def box_list(boxes, box_format: str, node: str) -> np.ndarray:
    """A BBOX list from another pack -> N x 4 float64 x0, y0, x1, y1.

    Packs differ: a list of [x0, y0, x1, y1], one such list per image, arrays or tensors of N x 4,
    dicts with a "bbox" or "bbox_2d" key; some write x, y, width, height (``box_format``)."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, np.ndarray):
        boxes = boxes.tolist()
    if not isinstance(boxes, (list, tuple)):
        raise InputError(f"{node}: expected a BBOX list of [x0, y0, x1, y1] boxes, got {type(boxes).__name__}")
    items = [i.detach().cpu().numpy().tolist() if isinstance(i, torch.Tensor)
             else i.tolist() if isinstance(i, np.ndarray) else i for i in boxes]
    if _is_box(items):
        items = [items]  # one box as four bare numbers
    elif items and all(isinstance(i, (list, tuple)) and not _is_box(i) for i in items):
        if len(items) != 1:  # one list of boxes per image
            raise InputError(f"{node}: the BBOX input holds boxes for {len(items)} images; CIELR works on one "
                             "image at a time (pick that image's boxes first)")
        items = list(items[0])
    out = []
    for k, item in enumerate(items, 1):
        values = _box_values(item) if _is_box(item) else None
        if values is None or not all(np.isfinite(values)):
            raise InputError(f"{node}: box {k} is not four finite numbers x0, y0, x1, y1: {str(item)[:80]}")
        out.append(values)
    arr = np.array(out, dtype=np.float64).reshape(-1, 4)
    if box_format == BOX_FORMATS[1]:
        arr[:, 2:] += arr[:, :2]
    elif box_format != BOX_FORMATS[0]:
        raise InputError(f"{node}: unknown box format {box_format!r}; use one of: {' or '.join(BOX_FORMATS)}")
    return arr


def _seg_field(seg, name: str, k: int, node: str):
    # Impact Pack's SEG class can be imported twice in one ComfyUI process, so isinstance fails:
    # read by field name, which every SEG-like object (namedtuple or class) has.
    if not hasattr(seg, name):
        raise InputError(f"{node}: SEGS item {k} is not an Impact Pack SEG (it has no '{name}'); connect a SEGS "
                         "output such as a detector's or MASK to SEGS")
    return getattr(seg, name)


def _ints(values, what: str, k: int, node: str) -> list[int]:
    v = _box_values(values)
    if v is None or not all(np.isfinite(v)):
        raise InputError(f"{node}: SEG {k} has no usable {what} ({str(values)[:80]})")
    return [int(round(x)) for x in v]


def _seg_mask(cropped, k: int, node: str) -> np.ndarray:
    m = cropped.detach().to("cpu", torch.float32).numpy() if isinstance(cropped, torch.Tensor) else np.asarray(cropped)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise InputError(f"{node}: SEG {k}'s mask has shape {tuple(m.shape)}; expected one height x width mask "
                         "(SEGS of a video batch hold several: pick one frame first)")
    if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.number):
        raise InputError(f"{node}: SEG {k}'s mask has unsupported type {m.dtype}")
    return m


def segs_parts(segs, node: str):
    """Impact Pack SEGS ``((height, width), [SEG, ...])`` -> (height, width, [Part, ...]).

    A SEG's ``cropped_mask`` covers its ``crop_region`` [x0, y0, x1, y1] (end-exclusive); it is
    pasted into a full-size mask there. A SEG without a mask becomes a box part from its ``bbox``."""
    from cielr_core.scene import Part

    if not (isinstance(segs, (tuple, list)) and len(segs) == 2 and isinstance(segs[1], (list, tuple))):
        raise InputError(f"{node}: expected Impact Pack SEGS, ((height, width), [SEG, ...]), got "
                         f"{type(segs).__name__}")
    try:
        height, width = (int(v) for v in list(segs[0])[:2])
    except (TypeError, ValueError):
        raise InputError(f"{node}: the SEGS size {str(segs[0])[:40]} is not (height, width)") from None
    parts = []
    for k, seg in enumerate(segs[1], 1):
        label = str(_seg_field(seg, "label", k, node))
        confidence = _seg_field(seg, "confidence", k, node)
        try:
            score = float(np.asarray(confidence, dtype=np.float64).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            raise InputError(f"{node}: SEG {k}'s confidence {str(confidence)[:40]} is not a number") from None
        score = min(1.0, max(0.0, score)) if np.isfinite(score) else 0.0
        cropped = _seg_field(seg, "cropped_mask", k, node)
        if cropped is None:
            parts.append(Part(label, score, box=tuple(_ints(_seg_field(seg, "bbox", k, node), "bbox", k, node)),
                              name=f"SEG {k}"))
            continue
        x0, y0, x1, y1 = _ints(_seg_field(seg, "crop_region", k, node), "crop_region", k, node)
        crop = _seg_mask(cropped, k, node)
        if crop.shape != (y1 - y0, x1 - x0):
            raise InputError(f"{node}: SEG {k}'s mask is {crop.shape[1]}x{crop.shape[0]} but its crop_region "
                             f"{[x0, y0, x1, y1]} is {x1 - x0}x{y1 - y0}; the mask must cover the crop region")
        full = np.zeros((height, width), dtype=np.float32)
        # the part of the crop region inside the image (regions are normally inside already)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 > cx0 and cy1 > cy0:
            full[cy0:cy1, cx0:cx1] = crop[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        parts.append(Part(label, score, mask=full, name=f"SEG {k}"))
    return height, width, parts
