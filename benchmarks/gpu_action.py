"""One CIELR action on a 1024 x 1024 photo, timed on a CUDA GPU, with a full-size SD1.5 inpainting
model of random weights.

    python benchmarks/gpu_action.py [--device cuda] [--size 1024] [--steps 20] [--repeats 3] [--json F]

The SD1.5 inpainting pipeline is built from its published configs (``cielr_core/editing/sd_configs.py``)
with random weights, straight on the device in float16 (no file, no download; a byte-level CLIP
tokenizer stands in for the real one). Sample 7's photo and its object mask (a table) are scaled to
``size`` x ``size``, and one replace action runs through ``execute_plan`` with the diffusers engine
(crop, sample, stitch), once to warm up and then ``repeats`` times, at two working sizes: the default
(a crop around the mask) and ``size`` itself (the sampling cost of a whole 1024 x 1024 image). Printed:
the card, each time, the peak GPU memory, and whether every pixel outside the grown mask is unchanged.

``--tiny`` swaps in the tiny random pipeline of the tests, so the script itself can be checked on the
CPU in seconds (``--device cpu --tiny --size 64 --working-size 64 --steps 1 --dtype float32``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SAMPLE = 7
PROMPT = "a wooden table with a bowl of fruit"


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({torch.get_num_threads()} threads)"


def random_sd15_pipeline(folder: Path, device: str, dtype):
    """A StableDiffusionInpaintPipeline of SD1.5 inpainting's sizes with random weights, on ``device``."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from cielr_core.editing.sd_configs import write_sd15_config
    from devkit.sd_models import write_byte_tokenizer

    write_byte_tokenizer(folder / "byte-tokenizer")
    config = write_sd15_config(folder / "sd15-inpainting", folder / "byte-tokenizer", in_channels=9)
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(config / "text_encoder"))
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(config / "tokenizer"), unet=unet,
        scheduler=PNDMScheduler.from_config(PNDMScheduler.load_config(config / "scheduler")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def tiny_pipeline(folder: Path, device: str, dtype):
    from cielr_core.editing.diffusers_engine import load_inpaint_pipeline
    from devkit.sd_models import build_tiny_inpaint_pipeline

    return load_inpaint_pipeline(build_tiny_inpaint_pipeline(folder / "tiny-sd"), device=device, dtype=dtype)


def photo_and_scene(size: int):
    """Sample ``SAMPLE``'s photo and its object mask at size x size, as a one-object scene."""
    import numpy as np
    from PIL import Image

    from cielr_core.scene import build_scene, make_object
    from cielr_core.scene.model import Scene
    from devkit import CIEBENCH

    meta = json.loads((CIEBENCH / "data.json").read_text())[str(SAMPLE)]
    with Image.open(CIEBENCH / meta["image path"]) as im:
        photo = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))
    with Image.open(CIEBENCH / meta["mask path"][0]) as im:
        mask = np.asarray(im.convert("L").resize((size, size), Image.NEAREST)) > 127
    ys, xs = np.nonzero(mask)
    table = make_object(1, "table", 1.0, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), mask)
    return photo, build_scene(Scene(size, size, [table])), float(mask.mean())


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_action(photo, scene, engine, settings, device: str, repeats: int) -> dict:
    """Warm-up, then ``repeats`` timed runs of the one action; times in seconds, peak memory in GiB."""
    import numpy as np
    import torch

    from cielr_core.editing.execute import execute_plan
    from cielr_core.plan import Action, Plan

    plan = Plan(actions=[Action(op="replace", targets=[1], prompt=PROMPT)])
    execute_plan(photo, scene, plan, engine, settings)  # warm-up: kernels, caches, allocator
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = execute_plan(photo, scene, plan, engine, settings)
        synchronize(device)
        times.append(time.perf_counter() - start)
    outside = result.mask == 0  # the union of the grown masks: nothing outside it may change
    report = result.reports[0]
    return {"working_size": settings.working_size, "sampled": list(report.working),
            "window": [report.window.width, report.window.height], "seconds": times,
            "mean_s": statistics.mean(times), "min_s": min(times),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
            "outside_unchanged": bool(np.array_equal(result.image[outside], photo[outside])),
            "inside_changed": bool((result.image != photo).any())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=1024, help="the photo's side in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--working-size", type=int, action="append",
                        help="working sizes to time (repeatable; default: the node's default and --size)")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny pipeline (checks the script)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    from cielr_core.editing.diffusers_engine import DiffusersEngine
    from cielr_core.editing.engine import SamplerSettings
    from cielr_core.editing.execute import EditSettings

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_action: no CUDA device (torch {torch.__version__}); run it on a machine with a CUDA GPU",
              file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    photo, scene, area = photo_and_scene(args.size)
    figures = {"device": device_name(args.device), "torch": torch.__version__, "cuda": torch.version.cuda,
               "dtype": args.dtype, "size": args.size, "steps": args.steps, "mask_fraction": area, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pipe = (tiny_pipeline if args.tiny else random_sd15_pipeline)(Path(tmp), args.device, dtype)
        synchronize(args.device)
        figures["build_s"] = time.perf_counter() - start
        figures["unet_parameters"] = sum(p.numel() for p in pipe.unet.parameters())
        engine = DiffusersEngine(pipe, SamplerSettings(steps=args.steps, cfg=7.0))
        for working in sorted(set(args.working_size or (EditSettings().working_size, args.size))):
            figures["runs"].append(time_action(photo, scene, engine, EditSettings(seed=11, working_size=working),
                                               args.device, args.repeats))
    print(f"device: {figures['device']} (torch {figures['torch']}, CUDA {figures['cuda']})")
    print(f"model: {'tiny test' if args.tiny else 'SD1.5 inpainting'} UNet, "
          f"{figures['unet_parameters'] / 1e6:.1f}M parameters, random weights, {args.dtype}, "
          f"built on the device in {figures['build_s']:.1f} s")
    print(f"photo: sample {SAMPLE} at {args.size}x{args.size}, mask {area:.1%} of the image; one replace action, "
          f"{args.steps} steps, cfg 7")
    for run in figures["runs"]:
        peak = f", peak GPU memory {run['peak_gib']:.2f} GiB" if run["peak_gib"] is not None else ""
        print(f"working size {run['working_size']}: window {run['window'][0]}x{run['window'][1]} sampled at "
              f"{run['sampled'][0]}x{run['sampled'][1]}: mean {run['mean_s']:.3f} s, min {run['min_s']:.3f} s "
              f"over {args.repeats} runs{peak}; outside the mask unchanged: {run['outside_unchanged']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if all(r["outside_unchanged"] and r["inside_changed"] for r in figures["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
