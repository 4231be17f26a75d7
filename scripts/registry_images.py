"""The Comfy Registry icon (400x400) and banner (1260x540, 21:9) in docs/images, drawn from a
benchmark photo and its ground-truth mask: the object the instruction means, outlined, and the
rest of the photo untouched.

    python scripts/registry_images.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devkit import CIEBENCH as DATA  # noqa: E402
from devkit import REPO  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
ACCENT = (255, 196, 0)


def photo_and_mask(sample: str) -> tuple[Image.Image, np.ndarray]:
    meta = json.loads((DATA / "data.json").read_text())[sample]
    image = Image.open(DATA / meta["image path"]).convert("RGB")
    mask = Image.open(DATA / meta["mask path"][0]).convert("L").resize(image.size)
    return image, np.asarray(mask) > 127


def outlined(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """Dim everything but the mask a little and draw its outline, so the edited object stands out."""
    m = Image.fromarray(mask.astype(np.uint8) * 255)
    edge = np.asarray(m.filter(ImageFilter.MaxFilter(9))) ^ np.asarray(m.filter(ImageFilter.MinFilter(3)))
    out = Image.blend(image, Image.new("RGB", image.size, (16, 16, 24)), 0.35)
    out.paste(image, mask=m)
    arr = np.asarray(out).copy()
    arr[edge > 0] = ACCENT
    return Image.fromarray(arr)


def crop_around(image: Image.Image, mask: np.ndarray, aspect: float) -> Image.Image:
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean(), ys.mean()
    w = min(image.width, image.height * aspect)
    h = w / aspect
    x0 = int(np.clip(cx - w / 2, 0, image.width - w))
    y0 = int(np.clip(cy - h / 2, 0, image.height - h))
    return image.crop((x0, y0, x0 + int(w), y0 + int(h)))


def main() -> None:
    image, mask = photo_and_mask("0")
    shown = outlined(image, mask)
    icon = crop_around(shown, mask, 1.0).resize((400, 400), Image.LANCZOS)
    draw = ImageDraw.Draw(icon)
    draw.rectangle((0, 316, 400, 400), fill=(16, 16, 24))
    draw.text((200, 358), "CIELR", font=ImageFont.truetype(FONT, 64), fill=ACCENT, anchor="mm")
    icon.save(REPO / "docs" / "images" / "icon.png", optimize=True)

    banner = Image.new("RGB", (1260, 540), (16, 16, 24))
    shown.thumbnail((620, 540), Image.LANCZOS)
    banner.paste(shown, (0, (540 - shown.height) // 2))
    draw = ImageDraw.Draw(banner)
    x = shown.width + 40
    draw.text((x, 170), "CIELR", font=ImageFont.truetype(FONT, 84), fill=ACCENT)
    for i, line in enumerate(("complex instructions in,", "only the meant pixels edited")):
        draw.text((x, 290 + 44 * i), line, font=ImageFont.truetype(FONT, 32), fill=(235, 235, 235))
    banner.save(REPO / "docs" / "images" / "banner.jpg", quality=88)


if __name__ == "__main__":
    main()
