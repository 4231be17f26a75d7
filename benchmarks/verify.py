"""What verification costs per action, next to what one sampling of the action costs, and how often
the random-weight pipeline passes (a sanity figure only).

    python benchmarks/verify.py                 # full-size random GroundingDINO SwinT + SD1.5 inpainting
    python benchmarks/verify.py --tiny          # the tests' tiny random models (seconds)
    python benchmarks/verify.py --tiny --samples 10 --candidates 3   # the pass-rate part on more samples
    python benchmarks/verify.py --steps 4 --samples 0                # the cost part only

Part 1, cost (one process, both sides measured in the same run): the speaker of ciebench-dev sample
0 (796 x 597, its ground-truth mask) is removed with the library's executor and the diffusers engine
(working size 512, ``--steps`` steps), once without a verifier and once with one; the verifier's
own time is measured around each call (a GroundingDINO pass on the action's window, plus the
pixel check), ``--repeat`` times, median reported.

Part 2, pass rate: the oracle plan (each ground-truth mask replaced with the CLIP target text) of the
first ``--samples`` readable entries, with ``--candidates`` candidates per action and the tiny models
(or the full-size ones without ``--tiny``), thresholds 0.3 / 0.25. Random weights find nothing
meaningful: the figure proves the bookkeeping runs end to end, not that edits are good.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CACHE, DATA  # (importing it puts the repository on sys.path)

from devkit import COMFYUI

TEST_MODELS = CACHE / "test-models"


class Timed:
    """Wraps a verifier and records the seconds of each call."""

    def __init__(self, verifier):
        self.verifier, self.seconds = verifier, []

    def __call__(self, *args):
        start = time.perf_counter()
        try:
            return self.verifier(*args)
        finally:
            self.seconds.append(time.perf_counter() - start)


def models(tiny: bool, folder: Path, steps: int):
    from cielr_core.editing.diffusers_engine import DiffusersEngine
    from cielr_core.editing.engine import SamplerSettings
    from cielr_core.perception.detector import load_grounding_dino

    settings = SamplerSettings(steps=steps, cfg=7.5)
    if tiny:
        from devkit.gdino_models import build_tiny_gdino
        from devkit.sd_models import build_tiny_inpaint_pipeline

        gdino, bert = build_tiny_gdino(folder / "gdino")
        engine = DiffusersEngine.from_path(build_tiny_inpaint_pipeline(folder / "sd"), settings=settings)
        return load_grounding_dino(gdino, bert), engine, "tiny random GroundingDINO + tiny SD inpainting UNet"

    from cielr_core.editing.sd_configs import write_sd15_config
    from devkit.gdino_models import build_full_bert, build_full_release
    from devkit.sd_models import build_sd15_checkpoints

    gdino, bert = build_full_release(TEST_MODELS, "SwinT-OGC"), build_full_bert(TEST_MODELS)
    checkpoint = build_sd15_checkpoints(TEST_MODELS).inpainting
    tokenizer = COMFYUI / "comfy" / "sd1_tokenizer"
    config = write_sd15_config(folder / "sd15-config", tokenizer, in_channels=9)
    engine = DiffusersEngine.from_path(checkpoint, config, settings=settings)
    return (load_grounding_dino(gdino, bert), engine,
            "full-size random GroundingDINO SwinT-OGC + SD1.5 inpainting (fp32 on the CPU)")


def cost(detector, engine, steps: int, repeat: int, working_size: int) -> dict:
    from PIL import Image

    from cielr_core.editing import EditSettings, execute_plan
    from cielr_core.plan import Plan
    from cielr_core.scene import make_object
    from cielr_core.scene.model import Scene
    from cielr_core.verify import Verifier
    from devkit import load_photo

    image = load_photo(0)
    h, w = image.shape[:2]
    mask = np.asarray(Image.open(DATA / "0" / "0_mask.png").convert("L")) > 127
    ys, xs = np.nonzero(mask)
    scene = Scene(w, h, [make_object(1, "speaker", 0.9, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), mask)])
    plan = Plan.model_validate({"actions": [{"op": "remove", "targets": [1]}]})
    settings = EditSettings(seed=1, working_size=working_size)
    plain, checked = [], []
    verifier = Timed(Verifier(detector))
    for _ in range(repeat):
        start = time.perf_counter()
        execute_plan(image, scene, plan, engine, settings)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = execute_plan(image, scene, plan, engine, settings, verifier=verifier)
        checked.append(time.perf_counter() - start)
    report = result.reports[0]
    return {"sampling_s": statistics.median(plain), "with_verify_s": statistics.median(checked),
            "verify_s": statistics.median(verifier.seconds), "window": f"{report.window.width}x{report.window.height}",
            "working": f"{report.working[0]}x{report.working[1]}", "verdict": report.verdict.short()}


def pass_rate(detector, engine, samples: int, candidates: int, working_size: int) -> dict:
    from cielr_core.bench.options import BenchModels, BenchOptions
    from cielr_core.bench.runner import run_bench
    from cielr_core.editing import EditSettings
    from cielr_core.pipeline import PipelineSettings

    settings = PipelineSettings(edit=EditSettings(working_size=working_size, context=16, candidates=candidates))
    with tempfile.TemporaryDirectory(prefix="cielr-verify-bench-") as tmp:
        options = BenchOptions(dataset=DATA, out=Path(tmp) / "run", oracle=True, sizes=(256,), progress=False,
                               limit=samples)
        report = run_bench(options, BenchModels(engine=engine, detector=detector, settings=settings),
                           {"benchmark": "verify"})
    return report.summary["verification"]


def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random models")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps of the cost part (default 20)")
    parser.add_argument("--working-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5, help="dataset entries of the pass-rate part")
    parser.add_argument("--candidates", type=int, default=3)
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(0)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="cielr-verify-models-") as tmp:
        detector, engine, what = models(args.tiny, Path(tmp), args.steps)
        print(f"models: {what}")
        c = cost(detector, engine, args.steps, args.repeat, args.working_size)
        print(f"\n| | seconds |\n|---|---:|\n| one sampling of the action ({args.steps} steps, window {c['window']}, "
              f"sampled at {c['working']}) | {c['sampling_s']:.2f} |\n| the action with verification | "
              f"{c['with_verify_s']:.2f} |\n| verification alone (detector pass on the window + pixel check) | "
              f"{c['verify_s']:.2f} |\n| **verification / sampling** | **{c['verify_s'] / c['sampling_s']:.2f}** |")
        print(f"verdict of the last run: {c['verdict']}")
        if args.samples < 1:
            return
        engine.settings = type(engine.settings)(steps=1, cfg=engine.settings.cfg)  # the pass rate needs no steps
        v = pass_rate(detector, engine, args.samples, args.candidates, min(args.working_size, 256))
        print(f"\npass rate (random weights, sanity only): {v['passed']} of {v['verified']} verified actions kept a "
              f"passing candidate; first candidate passed {v['first_candidate_passed']}, some candidate passed "
              f"{v['any_candidate_passed']}; {v['candidates_sampled']} candidates sampled; kept: {v['kept_candidate']}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
