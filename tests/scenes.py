"""Small synthetic scenes for the logic tests: rectangular objects with known ids."""

from __future__ import annotations

import numpy as np

from cielr_core.scene import Scene, build_scene, make_object


def box_mask(box, width: int, height: int) -> np.ndarray:
    """A filled rectangle (x0, y0, x1, y1; x1 and y1 exclusive, rounded) as a bool mask."""
    m = np.zeros((height, width), bool)
    x0, y0, x1, y1 = (round(v) for v in box)
    m[y0:y1, x0:x1] = True
    return m


def box_scene(width: int, height: int, spec: dict[int, tuple[str, tuple]], score=0.9, built: bool = True) -> Scene:
    """One object per ``{id: (label, box)}``; ``score`` is a number or a function of the id."""
    objects = [make_object(i, label, score(i) if callable(score) else score, box, box_mask(box, width, height))
               for i, (label, box) in spec.items()]
    scene = Scene(width, height, objects)
    return build_scene(scene) if built else scene


def speaker_scene() -> tuple[np.ndarray, np.ndarray, tuple, Scene]:
    """Benchmark photo 0 with its ground-truth mask (the speaker): (photo, mask, mask box, a scene whose
    only object, #1, is the speaker)."""
    from PIL import Image

    from tests.conftest import CIEBENCH, load_photo

    image = load_photo(0)
    h, w = image.shape[:2]
    mask = np.asarray(Image.open(CIEBENCH / "0" / "0_mask.png").convert("L")) > 127
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return image, mask, box, Scene(w, h, [make_object(1, "speaker", 0.9, box, mask)])
