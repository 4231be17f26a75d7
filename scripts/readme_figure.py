"""The README's before / scene overlay / after / changed-pixels figure, from a real run of the library.

    python scripts/readme_figure.py [--sample 0] [--out docs/images/edit_example.jpg]

The photo and its object mask come from ciebench-dev. The scene is that one object (so the figure
does not depend on detector weights), the plan replaces it, and the diffusers engine inpaints with
the tiny random-weight pipeline the tests build: the edited region is therefore noise, and the
figure shows what the pack guarantees, not picture quality. The last panel marks every pixel that
differs from the input (white) over the output MASK (blue): nothing white lies outside the blue.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devkit import CIEBENCH as DATA  # noqa: E402  (one home for the data path)
from devkit import REPO  # noqa: E402

PANEL_HEIGHT = 300


def panel(image: np.ndarray, title: str) -> Image.Image:
    im = Image.fromarray(image)
    im = im.resize((round(im.width * PANEL_HEIGHT / im.height), PANEL_HEIGHT), Image.LANCZOS)
    out = Image.new("RGB", (im.width, PANEL_HEIGHT + 28), "white")
    out.paste(im, (0, 28))
    ImageDraw.Draw(out).text((6, 8), title, fill="black")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample", default="0")
    ap.add_argument("--label", default="speaker")
    ap.add_argument("--prompt", default="a floor lamp")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "edit_example.jpg")
    args = ap.parse_args()

    from cielr_core.editing.diffusers_engine import DiffusersEngine, load_inpaint_pipeline
    from cielr_core.editing.engine import SamplerSettings
    from cielr_core.editing.execute import EditSettings, execute_plan
    from cielr_core.images import load_image
    from cielr_core.plan import plan_from_json
    from cielr_core.scene import build_scene, make_object
    from cielr_core.scene.model import Scene
    from cielr_core.scene import render_preview
    from devkit.sd_models import build_tiny_inpaint_pipeline

    meta = json.loads((DATA / "data.json").read_text())[args.sample]
    photo = load_image(DATA / meta["image path"])
    with Image.open(DATA / meta["mask path"][0]) as im:
        mask = np.asarray(im.convert("L").resize(photo.shape[1::-1], Image.NEAREST)) > 127
    ys, xs = np.nonzero(mask)
    obj = make_object(1, args.label, 1.0, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), mask)
    scene = build_scene(Scene(photo.shape[1], photo.shape[0], [obj]))
    plan = plan_from_json(json.dumps({"actions": [{"op": "replace", "targets": [1], "prompt": args.prompt}]}),
                          scene)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_inpaint_pipeline(build_tiny_inpaint_pipeline(Path(tmp) / "pipe"))
        result = execute_plan(photo, scene, plan, DiffusersEngine(pipe, SamplerSettings(steps=2)),
                              EditSettings(seed=1))
    edited = np.asarray(result.image)
    changed = np.any(edited != photo, axis=-1)
    out_mask = result.mask > 0
    assert not (changed & ~out_mask).any(), "pixels outside the output MASK changed"
    diff = np.zeros_like(photo)
    diff[out_mask] = (40, 90, 200)
    diff[changed] = 255
    panels = [panel(photo, "input"), panel(render_preview(photo, scene), "scene overlay (object 1)"),
              panel(edited, f"after: replace 1 with '{args.prompt}' (random weights)"),
              panel(diff, "changed pixels (white) inside the MASK (blue)")]
    sheet = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), panels[0].height), "white")
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + 8
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=90)
    print(f"{args.out}: {int(changed.sum())} pixels changed, {int(out_mask.sum())} in the MASK, "
          f"{int((changed & ~out_mask).sum())} outside it")


if __name__ == "__main__":
    main()
