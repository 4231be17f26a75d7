"""Colour names and CIELAB: what colour a recolor prompt asks for, and how far a region moved to it.

The table holds common English colour names with a typical sRGB value each (CSS values where CSS
has the name). CIELAB is computed for D65 sRGB; distances are CIE76 (Euclidean in L*a*b*), which
is enough to tell "moved toward red" from "stayed grey".
"""

from __future__ import annotations

import re

import numpy as np

from ..images import to_rgb_uint8

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "dark red": (139, 0, 0), "crimson": (220, 20, 60), "maroon": (128, 0, 0),
    "pink": (255, 150, 180), "hot pink": (255, 105, 180), "magenta": (255, 0, 255), "purple": (128, 0, 128),
    "violet": (143, 0, 255), "lavender": (181, 126, 220), "orange": (255, 140, 0), "yellow": (255, 220, 0),
    "gold": (255, 200, 40), "golden": (255, 200, 40), "beige": (225, 205, 170), "cream": (255, 250, 220),
    "brown": (120, 70, 30), "dark brown": (80, 45, 20), "tan": (210, 180, 140), "green": (30, 160, 40),
    "dark green": (0, 100, 0), "light green": (144, 238, 144), "lime": (50, 205, 50), "olive": (128, 128, 0),
    "teal": (0, 128, 128), "turquoise": (64, 224, 208), "cyan": (0, 220, 220), "blue": (30, 60, 220),
    "dark blue": (0, 0, 139), "navy": (0, 0, 110), "light blue": (150, 200, 240), "sky blue": (135, 206, 235),
    "white": (245, 245, 245), "black": (15, 15, 15), "grey": (128, 128, 128), "gray": (128, 128, 128),
    "dark grey": (70, 70, 70), "dark gray": (70, 70, 70), "light grey": (200, 200, 200),
    "light gray": (200, 200, 200), "silver": (192, 192, 192),
}
ACHROMATIC = {"white", "black", "grey", "gray", "dark grey", "dark gray", "light grey", "light gray", "silver"}
# Longest names first, so "dark blue" wins over "blue".
_PATTERN = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(COLOURS, key=len, reverse=True)) + r")\b")


def colour_in(text: str) -> str | None:
    """The first colour name in ``text`` (longest match), or None."""
    found = _PATTERN.search(" ".join(text.lower().replace("-", " ").split()))
    return found.group(1) if found else None


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """... x 3 sRGB (uint8, or float in [0, 1]) -> ... x 3 CIELAB (D65)."""
    a = np.asarray(rgb)
    c = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else np.clip(a.astype(np.float64), 0.0, 1.0)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def colour_lab(name: str) -> np.ndarray:
    return rgb_to_lab(np.asarray(COLOURS[name], np.uint8))


def mean_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour of ``image`` under a bool mask (converted per pixel, then averaged)."""
    return rgb_to_lab(to_rgb_uint8(image)[mask]).mean(axis=0)


def distance(a: np.ndarray, b: np.ndarray, lightness_weight: float = 1.0) -> float:
    """CIE76 distance; ``lightness_weight`` < 1 cares less about L* (a chromatic recolour keeps shading)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.sqrt((lightness_weight * d[..., 0]) ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2))
