"""The scene drawn over the photo: tinted masks with outlines, boxes, and "#id label score" tags."""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..images import to_rgb_uint8
from .masks import check_mask, mask_box
from .model import Scene, SceneObject, check_same_size
from .text import one_line

TINT = 0.45  # mask colour weight: the photo stays recognisable under it


def object_color(object_id: int) -> tuple[int, int, int]:
    """Distinct, stable colour per id: hues spaced by the golden ratio."""
    hue = (object_id * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError, AttributeError):
        return ImageFont.load_default()


def _erode(m: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour erosion; outside the crop counts as background."""
    e = m.copy()
    for _ in range(steps):
        s = e.copy()
        s[1:] &= e[:-1]
        s[:-1] &= e[1:]
        s[:, 1:] &= e[:, :-1]
        s[:, :-1] &= e[:, 1:]
        s[[0, -1], :] = False
        s[:, [0, -1]] = False
        e = s
    return e


def _paint_mask(img: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], line: int) -> None:
    box = mask_box(mask)
    if box is None:
        return
    x0, y0, x1, y1 = (int(v) for v in box)
    view, m = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]  # work in the crop: big images, small objects
    c = np.array(color, dtype=np.float32)
    view[m] = (view[m] * (1 - TINT) + c * TINT).astype(np.uint8)
    view[m & ~_erode(m, line)] = color


def _draw_tag(draw: ImageDraw.ImageDraw, o: SceneObject, color: tuple[int, int, int],
              font: ImageFont.ImageFont, size: tuple[int, int]) -> None:
    text = f"#{o.id} {one_line(o.label, 40)} {o.score:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, (bottom - top) // 5)
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    w, h = size
    x = max(0, min(int(o.box[0]), w - tw))
    y = int(o.box[1]) - th if o.box[1] >= th else int(o.box[1])  # above the box when it fits
    y = max(0, min(y, h - th))
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=color)
    draw.text((x + pad - left, y + pad - top), text, font=font,
              fill=(0, 0, 0) if luma > 140 else (255, 255, 255))


def render_preview(image: np.ndarray, scene: Scene) -> np.ndarray:
    """RGB uint8 overlay: tinted masks with outlines, boxes and "#id label score" tags."""
    img = np.array(to_rgb_uint8(image), copy=True)  # to_rgb_uint8 may hand back the input itself
    h, w = img.shape[:2]
    check_same_size(scene, img)
    if not scene.objects:
        return img
    short = min(w, h)
    line = max(1, round(short / 400))
    objects = sorted(scene.objects, key=lambda o: (-o.area, o.id))  # small masks stay visible on top
    for o in objects:
        _paint_mask(img, check_mask(o.mask, h, w), object_color(o.id), line)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for o in objects:
        x0, y0, x1, y1 = o.box
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=object_color(o.id), width=line)
    font = _font(max(10, round(short / 30)))
    for o in sorted(scene.objects, key=lambda o: o.id):
        _draw_tag(draw, o, object_color(o.id), font, (w, h))
    return np.array(pil)
