"""Crop-and-stitch: a context window around the mask, scaled to the model's working size and back,
then composited so that nothing outside the grown mask changes.

The guarantee is by construction: ``composite`` writes only the pixels where the grown mask is
set; every other pixel keeps its original value (and bits), whatever the dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .regions import Borders

MAX_ASPECT = 2.0  # windows are widened towards at most 2:1 (when the image allows), like a photo


@dataclass(frozen=True)
class Window:
    """A crop window in image pixels; x1 and y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def borders(self, width: int, height: int) -> Borders:
        return Borders(left=self.x0 == 0, top=self.y0 == 0, right=self.x1 == width, bottom=self.y1 == height)


def _widen(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    """Grow [lo, hi) to length ``size`` around its centre, shifted to stay within [0, limit)."""
    size = min(size, limit)
    extra = size - (hi - lo)
    if extra <= 0:
        return lo, hi
    lo -= extra // 2
    lo = max(0, min(lo, limit - size))
    return lo, lo + size


def crop_window(box: tuple[int, int, int, int], margin: int, width: int, height: int,
                max_aspect: float = MAX_ASPECT) -> Window:
    """The mask's box plus ``margin`` on each side, clipped, then widened towards ``max_aspect``."""
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0 - margin), max(0, y0 - margin)
    x1, y1 = min(width, x1 + margin), min(height, y1 + margin)
    w, h = x1 - x0, y1 - y0
    if w > max_aspect * h:
        y0, y1 = _widen(y0, y1, math.ceil(w / max_aspect), height)
    elif h > max_aspect * w:
        x0, x1 = _widen(x0, x1, math.ceil(h / max_aspect), width)
    return Window(int(x0), int(y0), int(x1), int(y1))


def working_size(width: int, height: int, size: int, multiple: int = 8,
                 max_long: int | None = None) -> tuple[int, int]:
    """(width, height) for the model: about ``size`` x ``size`` pixels in all, in the crop's shape.

    Equal area rather than equal short side: a model's cost and its comfort zone (512^2 for SD1.5,
    1024^2 for SDXL) go with the pixel count, so a 4:3 crop samples at 592 x 440, not 688 x 512.
    The long side stays at most ``max_long`` (default 2 x size); both sides are multiples of
    ``multiple`` and at least one multiple.
    """
    if size < multiple:
        raise ValueError(f"working size {size} is smaller than {multiple}")
    max_long = max_long or 2 * size
    scale = size / math.sqrt(width * height)
    scale = min(scale, max_long / max(width, height))

    def snap(v: float) -> int:
        return max(multiple, round(v * scale / multiple) * multiple)

    return snap(width), snap(height)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """H x W x C float32 -> height x width x C float32 (bicubic; antialiased when shrinking), in [0, 1]."""
    if image.shape[1] == width and image.shape[0] == height:
        return image.astype(np.float32, copy=True)
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    shrink = width < image.shape[1] or height < image.shape[0]
    out = F.interpolate(t, size=(height, width), mode="bicubic", align_corners=False, antialias=shrink)
    return out[0].permute(1, 2, 0).clamp(0, 1).contiguous().numpy()


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bool mask -> float32 0/1 mask of the new size that covers every pixel the old one touched."""
    if mask.shape == (height, width):
        return mask.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(height, width), mode="area" if height <= mask.shape[0] else "bilinear",
                        align_corners=None if height <= mask.shape[0] else False)
    return (out[0, 0] > 0).float().numpy()


def to_float(crop: np.ndarray) -> np.ndarray:
    """A crop of the running image as float32 in [0, 1] (uint8 and float inputs alike)."""
    if crop.dtype == np.uint8:
        return crop.astype(np.float32) / 255.0
    return np.clip(crop.astype(np.float32), 0.0, 1.0)


def composite(original: np.ndarray, generated: np.ndarray, grown: np.ndarray,
              weight: np.ndarray) -> np.ndarray:
    """A new crop: original where ``grown`` is False, else weight * generated + (1 - weight) * original.

    ``original`` keeps its dtype (uint8 or float); ``generated`` is float32 in [0, 1] of the same
    size. The blend is computed in float on the original values; only grown pixels are written.
    """
    out = original.copy()
    if not grown.any():
        return out
    orig = original[grown]
    if original.dtype == np.uint8:
        orig_f = orig.astype(np.float32) / 255.0
    else:
        orig_f = orig.astype(np.float32)
    w = weight[grown][:, None].astype(np.float32)
    blended = w * generated[grown].astype(np.float32) + (1.0 - w) * orig_f
    if original.dtype == np.uint8:
        out[grown] = np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)
    else:
        out[grown] = blended.astype(original.dtype)
    return out
