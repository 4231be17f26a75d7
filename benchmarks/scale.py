"""Memory and scale on the CPU path: an 8000 x 6000 photo, 1 / 10 / 50 objects, a five-action plan.

    python benchmarks/scale.py                      # full-size random SAM ViT-B + GroundingDINO SwinT
    python benchmarks/scale.py --tiny               # tiny random models (seconds, what the test uses)
    python benchmarks/scale.py --objects 50 --json out.json --save DIR   # one case (the test's child)

A real photo of the benchmark set (sample 0) is scaled to 8000 x 6000. Each object count runs in its
own process, so each reports its own peak memory. Per case, with the library's own code:

- detect: GroundingDINO on the whole photo (random weights find nothing meaningful, so its boxes are
  dropped; the stage is timed because the 8000 x 6000 input goes through it);
- segment: SAM on N fixed boxes (one image embedding, N masks upscaled to 8000 x 6000). Random
  weights give a speckle over the whole image; each mask is kept inside its prompt box, as a
  trained SAM's mask would be, so the scene holds object-sized masks;
- scene: ``scene_from_detections`` + ``build_scene`` (area, centroid, size ranks, relations);
- relations: ``compute_relations`` alone, timed again on the built objects (target: < 1 s at 50);
- edit: a five-action plan (remove, replace, recolor, add, a two-target replace) validated and run by
  ``execute_plan`` with the diffusers engine over a tiny random SD inpainting pipeline: the real
  crop, scale, sample, scale back and stitch code at full resolution.

Per stage: wall time and the process's peak resident memory while it ran (sampled every 5 ms), and
per case the process's lifetime peak (ru_maxrss). Models: SAM and GroundingDINO full-size with random
weights (cost does not depend on the weights' values) unless ``--tiny``; the inpainting UNet is tiny
either way, so the edit time is the crop-and-stitch overhead plus a tiny sampler, not SD1.5's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from common import CACHE, DATA, MIB, REPO, MemoryMonitor  # (importing it puts the repository on sys.path)

TEST_MODELS = CACHE / "test-models"
WIDTH, HEIGHT = 8000, 6000
COUNTS = (1, 10, 50)
STAGES = ("load", "image", "detect", "segment", "scene", "relations", "edit")
LABELS = ["tv", "speaker", "lamp", "sofa", "table", "cup", "plant", "picture"]


def load_photo(sample: int = 0) -> np.ndarray:
    """A benchmark photo as RGB uint8, scaled to WIDTH x HEIGHT (bicubic)."""
    from PIL import Image

    meta = json.loads((DATA / "data.json").read_text())[str(sample)]
    with Image.open(DATA / meta["image path"]) as im:
        return np.asarray(im.convert("RGB").resize((WIDTH, HEIGHT), Image.BICUBIC))


def object_boxes(n: int, width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    """``n`` boxes like a cluttered room: objects of 4-25% of each side at random places (so some
    overlap and some stand side by side), and every fourth one a part inside an earlier object."""
    rng = np.random.default_rng(seed)
    boxes: list[tuple[float, float, float, float]] = []
    for i in range(n):
        if i % 4 == 3:
            px0, py0, px1, py1 = boxes[int(rng.integers(0, i))]
            w, h = (px1 - px0) * rng.uniform(0.2, 0.5), (py1 - py0) * rng.uniform(0.2, 0.5)
            x, y = rng.uniform(px0, px1 - w), rng.uniform(py0, py1 - h)
        else:
            w, h = width * rng.uniform(0.04, 0.25), height * rng.uniform(0.04, 0.25)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append((x, y, x + w, y + h))
    return np.array(boxes, dtype=np.float32)


def keep_inside_boxes(masks: np.ndarray, boxes: np.ndarray) -> None:
    """Clear each mask outside its box, in place (random SAM weights speckle the whole image)."""
    h, w = masks.shape[1:]
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        xa, ya = int(np.floor(x0)), int(np.floor(y0))
        xb, yb = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        m[:ya] = False
        m[yb:] = False
        m[:, :xa] = False
        m[:, xb:] = False


def five_action_plan(ids: list[int]):
    """remove, replace, recolor, add, and a two-target replace, over objects spread through ``ids``."""
    from cielr_core.plan import Action, Plan

    pick = [ids[k * len(ids) // 6] for k in range(6)]
    pair = list(dict.fromkeys(pick[4:6]))
    return Plan(actions=[
        Action(op="remove", targets=[pick[0]]),
        Action(op="replace", targets=[pick[1]], prompt="a floor lamp"),
        Action(op="recolor", targets=[pick[2]], prompt="the same thing in deep blue"),
        Action(op="add", anchor=pick[3], placement="on_top_of", prompt="a small vase of flowers"),
        Action(op="replace", targets=pair, prompt="a wooden cabinet"),
    ])


def _models(tiny: bool, folder: Path):
    """(detector, segmenter, inpaint pipeline folder); tiny ones are built into ``folder``."""
    from devkit.sd_models import build_tiny_inpaint_pipeline

    if tiny:
        from devkit.gdino_models import build_tiny_gdino
        from devkit.sam_models import build_tiny_sam

        sam = build_tiny_sam(folder / "sam_tiny.pth")
        gdino, bert = build_tiny_gdino(folder / "gdino")
    else:
        from devkit.gdino_models import build_full_bert, build_full_release
        from devkit.sam_models import full_sam_vit_b

        sam = full_sam_vit_b(TEST_MODELS)
        gdino, bert = build_full_release(TEST_MODELS, "SwinT-OGC"), build_full_bert(TEST_MODELS)
    return gdino, bert, sam, build_tiny_inpaint_pipeline(folder / "sd-inpaint")


def run_case(n: int, tiny: bool = False, steps: int = 2, working_size: int = 512,
             save: Path | None = None) -> dict:
    """One case in this process: per-stage seconds and peak RSS, the edit report, ru_maxrss."""
    import torch

    from cielr_core.editing import EditSettings, execute_plan
    from cielr_core.editing.diffusers_engine import DiffusersEngine
    from cielr_core.editing.engine import SamplerSettings
    from cielr_core.perception.detector import load_grounding_dino
    from cielr_core.perception.segmenter import load_sam
    from cielr_core.plan import validate_plan
    from cielr_core.scene import build_scene, compute_relations, scene_from_detections

    torch.manual_seed(0)
    stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(name: str):
        start = time.perf_counter()
        with MemoryMonitor() as rss:
            yield
        stages[name] = {"seconds": time.perf_counter() - start, "peak_mb": rss.peak / MIB}

    with tempfile.TemporaryDirectory(prefix="cielr-scale-") as tmp:
        with stage("load"):
            gdino, bert, sam_path, sd_dir = _models(tiny, Path(tmp))
            detector = load_grounding_dino(gdino, bert)
            segmenter = load_sam(sam_path)
            engine = DiffusersEngine.from_path(sd_dir, settings=SamplerSettings(steps=steps, cfg=7.5))
        with stage("image"):
            image = load_photo()
        with stage("detect"):
            detector.detect(image, LABELS, box_threshold=0.3, text_threshold=0.25)
        boxes = object_boxes(n)
        with stage("segment"):
            masks = segmenter.segment(image, boxes)
            keep_inside_boxes(masks, boxes)
        with stage("scene"):
            labels = [LABELS[i % len(LABELS)] for i in range(n)]
            raw = scene_from_detections(WIDTH, HEIGHT, boxes, np.full(n, 0.9), labels, masks)
            scene = build_scene(raw)
        with stage("relations"):
            relations = compute_relations(scene.objects, WIDTH, HEIGHT)
        plan = five_action_plan([o.id for o in scene.objects])
        with stage("edit"):
            result = execute_plan(image, scene, validate_plan(plan, scene), engine,
                                  EditSettings(seed=7, working_size=working_size))
    out = {
        "objects": n, "stages": stages, "relations": len(relations),
        "mask_area_mean": float(np.mean([o.area for o in scene.objects])),
        "edit_report": result.report, "skipped": sum(r.skipped for r in result.reports),
        "changed_pixels": int(sum(r.changed_pixels for r in result.reports)),
        "union_fraction": float(result.mask.mean()),
        "image_shape": list(result.image.shape),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }
    if save is not None:  # for the test: input, result and union mask, compared outside this process
        save.mkdir(parents=True, exist_ok=True)
        np.save(save / "input.npy", image)
        np.save(save / "result.npy", result.image)
        np.save(save / "union.npy", result.mask > 0)
    return out


def run_child(n: int, tiny: bool, steps: int, working_size: int) -> dict:
    """``run_case`` in a fresh process, so its memory is its own."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [sys.executable, __file__, "--objects", str(n), "--json", f.name, "--steps", str(steps),
               "--working-size", str(working_size)] + (["--tiny"] if tiny else [])
        subprocess.run(cmd, check=True, cwd=REPO)
        return json.loads(Path(f.name).read_text())


def table(results: list[dict]) -> str:
    head = "| stage | " + " | ".join(f"{r['objects']} obj: s | {r['objects']} obj: peak MB" for r in results) + " |"
    rule = "|---|" + "---:|---:|" * len(results)
    rows = [head, rule]
    for s in STAGES:
        cells = " | ".join(f"{r['stages'][s]['seconds']:.2f} | {r['stages'][s]['peak_mb']:.0f}" for r in results)
        rows.append(f"| {s} | {cells} |")
    cells = " | ".join(f"{sum(v['seconds'] for v in r['stages'].values()):.1f} | {r['ru_maxrss_mb']:.0f}"
                       for r in results)
    rows.append(f"| **whole run** (time; process peak RSS) | {cells} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, help="run one case in this process (default: 1, 10, 50 in children)")
    p.add_argument("--tiny", action="store_true", help="tiny random SAM and GroundingDINO instead of full-size")
    p.add_argument("--steps", type=int, default=2, help="sampling steps per action (tiny UNet)")
    p.add_argument("--working-size", type=int, default=512)
    p.add_argument("--json", type=Path, help="write the case's figures here")
    p.add_argument("--save", type=Path, help="save input.npy, result.npy, union.npy here")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.objects is not None:
        out = run_case(args.objects, args.tiny, args.steps, args.working_size, args.save)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
        else:
            print(json.dumps(out, indent=1))
        return
    results = []
    for n in COUNTS:
        r = run_child(n, args.tiny, args.steps, args.working_size)
        print(f"{n} objects: {r['relations']} relations, mean mask area {r['mask_area_mean']:.4f}, "
              f"{r['skipped']} actions skipped, union of edits {r['union_fraction']:.3%} of the image", flush=True)
        print("  " + r["edit_report"].replace("\n", "\n  "), flush=True)
        results.append(r)
    print(f"\n{WIDTH} x {HEIGHT} photo, {'tiny' if args.tiny else 'full-size'} random SAM + GroundingDINO, "
          f"tiny SD inpainting ({args.steps} steps, working size {args.working_size}); load average "
          f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs\n")
    print(table(results))
    big = results[-1]
    print(f"\npeak RSS of the {big['objects']}-object run: {big['ru_maxrss_mb'] / 1024:.2f} GiB; relations for "
          f"{big['objects']} objects: {big['stages']['relations']['seconds']:.2f} s")


if __name__ == "__main__":
    main()
