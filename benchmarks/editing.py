"""Crop-and-stitch versus whole-image inpainting, in a real ComfyUI server on this machine.

    python benchmarks/editing.py [--steps 4] [--working-size 512] [--whole-steps N] [--sample 7]

A real photo of the benchmark set and its object mask (sample 7: a table, 5.3% of the image) are
scaled to 1024 x 1024. With the full-size random-weight SD1.5 checkpoint (built by the tests'
fixture, or here on first use), two jobs run through POST /prompt:

- crop-and-stitch: CIELR Inpaint Actions, one replace action on the mask (grow 8, feather 8,
  context 64, the crop scaled to the working size);
- whole image: VAEEncode + SetLatentNoiseMask + KSampler + VAEDecode on the whole 1024 x 1024 image,
  the plain way to inpaint with a noise mask.

Both use the same sampler, steps, cfg and seed. Times are ComfyUI's own execution_start to
execution_success timestamps, after a warm-up job that loaded the checkpoint (so neither pays the
load). Memory is the server's peak resident set size (RSS, sampled every 20 ms) during each job.
Changed pixels are found inside the graph, in float32 (ImageBlend differences, ThresholdMask at 0),
and counted outside the node's output MASK and outside the input mask.

``--whole-steps N`` (N < steps, N >= 2) runs the whole-image job with 1 and N steps instead and
extrapolates linearly to ``--steps``; the output says so when it does.

``--versus-graph`` compares, with the random SD1.5 *inpainting* checkpoint, CIELR Inpaint Actions
against ComfyUI's own graph of the same work on the same crop, which is what crop-and-stitch node
packs run: GrowMask, ImageCrop/CropMask to the node's window, ImageScale to the node's working size,
InpaintModelConditioning + KSampler + VAEDecode, ImageScale back, ImageCompositeMasked. Rounds
alternate (``--rounds``), each with a new seed so no sampler output is reused; text encodes are
reused by both sides, as ComfyUI reuses a CLIPTextEncode output whose inputs did not change.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from common import CACHE, DATA, MIB, MemoryMonitor  # (importing it puts the repository on sys.path)

TEST_MODELS = CACHE / "test-models"
SIZE = 1024
SEED, CFG, SAMPLER, SCHEDULER = 11, 7.0, "euler", "normal"
PROMPT = "a wooden table with a bowl of fruit"

# A benchmark-only node (in its own custom_nodes folder, not part of the pack): a one-object scene
# from a MASK, so the benchmark controls exactly which region is edited.
BENCH_NODE = '''
import numpy as np
from cielr_core.scene import build_scene, make_object
from cielr_core.scene.model import Scene


class CIELRBenchSceneFromMask:
    CATEGORY = "CIELR/bench"
    RETURN_TYPES = ("CIELR_SCENE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "label": ("STRING", {"default": "table"})}}

    def make(self, mask, label):
        m = mask.reshape(-1, *mask.shape[-2:])[0].cpu().numpy() > 0.5
        ys, xs = np.nonzero(m)
        obj = make_object(1, label, 1.0, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), m)
        return (build_scene(Scene(m.shape[1], m.shape[0], [obj])),)


NODE_CLASS_MAPPINGS = {"CIELRBenchSceneFromMask": CIELRBenchSceneFromMask}
'''


def prepare_inputs(base: Path, sample: int, size: int) -> float:
    """Photo and mask at size x size in the server's input folder; returns the mask's area fraction."""
    from PIL import Image

    meta = json.loads((DATA / "data.json").read_text())[str(sample)]
    (base / "input").mkdir(parents=True, exist_ok=True)
    with Image.open(DATA / meta["image path"]) as im:
        im.convert("RGB").resize((size, size), Image.BICUBIC).save(base / "input" / "bench_photo.png")
    with Image.open(DATA / meta["mask path"][0]) as im:
        mask = np.asarray(im.convert("L").resize((size, size), Image.NEAREST)) > 127
    Image.fromarray(np.repeat(mask[..., None] * np.uint8(255), 3, axis=2)).save(base / "input" / "bench_mask.png")
    return float(mask.mean())


def change_map(image: list, prefix: str) -> dict:
    """Graph nodes that save a 0/255 map of every pixel where ``image`` differs from the photo ("1")."""
    blend = lambda a, b, f, mode: {"class_type": "ImageBlend",
                                   "inputs": {"image1": a, "image2": b, "blend_factor": f, "blend_mode": mode}}
    to_mask = lambda c: {"class_type": "ImageToMask", "inputs": {"image": ["c3", 0], "channel": c}}
    add = lambda a, b: {"class_type": "MaskComposite",
                        "inputs": {"destination": a, "source": b, "x": 0, "y": 0, "operation": "add"}}
    return {
        "c1": blend(["1", 0], image, 1.0, "difference"), "c2": blend(image, ["1", 0], 1.0, "difference"),
        "c3": blend(["c1", 0], ["c2", 0], 0.5, "normal"),
        "cr": to_mask("red"), "cg": to_mask("green"), "cb": to_mask("blue"),
        "c4": add(["cr", 0], ["cg", 0]), "c5": add(["c4", 0], ["cb", 0]),
        "c6": {"class_type": "ThresholdMask", "inputs": {"mask": ["c5", 0], "value": 0.0}},
        "c7": {"class_type": "MaskToImage", "inputs": {"mask": ["c6", 0]}},
        "c8": {"class_type": "SaveImage", "inputs": {"images": ["c7", 0], "filename_prefix": prefix}},
    }


def common(checkpoint: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "bench_photo.png"}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": "bench_mask.png", "channel": "red"}},
        "5": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
    }


def crop_job(checkpoint: str, steps: int, working_size: int, seed: int = SEED, save_mask: bool = True) -> dict:
    plan = {"actions": [{"op": "replace", "targets": [1], "prompt": PROMPT}]}
    prompt = common(checkpoint)
    prompt.update({
        "3": {"class_type": "CIELRBenchSceneFromMask", "inputs": {"mask": ["2", 0], "label": "table"}},
        "4": {"class_type": "CIELRPlanFromJSON", "inputs": {"scene": ["3", 0], "plan_json": json.dumps(plan)}},
        "6": {"class_type": "CIELRInpaintActions",
              "inputs": {"image": ["1", 0], "scene": ["3", 0], "plan": ["4", 0], "model": ["5", 0], "clip": ["5", 1],
                         "vae": ["5", 2], "seed": seed, "steps": steps, "cfg": CFG, "sampler_name": SAMPLER,
                         "scheduler": SCHEDULER, "grow": 8, "feather": 8, "context": 64,
                         "working_size": working_size, "negative": "", "background_prompt": "background",
                         "recolor_denoise": 0.6}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 3]}},
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["6", 1]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "bench_crop_mask"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "bench_crop"}},
        **change_map(["6", 0], "bench_crop_changed"),
    })
    if not save_mask:  # the same outputs as the graph it is compared with
        del prompt["8"], prompt["9"]
    return prompt


def whole_job(checkpoint: str, steps: int) -> dict:
    prompt = common(checkpoint)
    prompt.update({
        "20": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["5", 1]}},
        "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["5", 1]}},
        "22": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["5", 2]}},
        "23": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["22", 0], "mask": ["2", 0]}},
        "24": {"class_type": "KSampler",
               "inputs": {"model": ["5", 0], "seed": SEED, "steps": steps, "cfg": CFG, "sampler_name": SAMPLER,
                          "scheduler": SCHEDULER, "positive": ["20", 0], "negative": ["21", 0],
                          "latent_image": ["23", 0], "denoise": 1.0}},
        "25": {"class_type": "VAEDecode", "inputs": {"samples": ["24", 0], "vae": ["5", 2]}},
        "26": {"class_type": "SaveImage", "inputs": {"images": ["25", 0], "filename_prefix": "bench_whole"}},
        **change_map(["25", 0], "bench_whole_changed"),
    })
    return prompt


def graph_job(checkpoint: str, steps: int, working_size: int, seed: int, window, work: tuple[int, int]) -> dict:
    """ComfyUI's own nodes doing what one Inpaint Actions action does, on the node's crop window."""
    x, y, w, h = window.x0, window.y0, window.width, window.height
    prompt = common(checkpoint)
    prompt.update({
        "30": {"class_type": "GrowMask", "inputs": {"mask": ["2", 0], "expand": 8, "tapered_corners": True}},
        "31": {"class_type": "ImageCrop", "inputs": {"image": ["1", 0], "width": w, "height": h, "x": x, "y": y}},
        "32": {"class_type": "CropMask", "inputs": {"mask": ["30", 0], "x": x, "y": y, "width": w, "height": h}},
        "33": {"class_type": "ImageScale", "inputs": {"image": ["31", 0], "upscale_method": "bicubic",
                                                      "width": work[0], "height": work[1], "crop": "disabled"}},
        "34": {"class_type": "MaskToImage", "inputs": {"mask": ["32", 0]}},
        "35": {"class_type": "ImageScale", "inputs": {"image": ["34", 0], "upscale_method": "bilinear",
                                                      "width": work[0], "height": work[1], "crop": "disabled"}},
        "36": {"class_type": "ImageToMask", "inputs": {"image": ["35", 0], "channel": "red"}},
        "20": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["5", 1]}},
        "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["5", 1]}},
        "37": {"class_type": "InpaintModelConditioning",
               "inputs": {"positive": ["20", 0], "negative": ["21", 0], "vae": ["5", 2], "pixels": ["33", 0],
                          "mask": ["36", 0], "noise_mask": True}},
        "38": {"class_type": "KSampler",
               "inputs": {"model": ["5", 0], "seed": seed, "steps": steps, "cfg": CFG, "sampler_name": SAMPLER,
                          "scheduler": SCHEDULER, "positive": ["37", 0], "negative": ["37", 1],
                          "latent_image": ["37", 2], "denoise": 1.0}},
        "39": {"class_type": "VAEDecode", "inputs": {"samples": ["38", 0], "vae": ["5", 2]}},
        "40": {"class_type": "ImageScale", "inputs": {"image": ["39", 0], "upscale_method": "bicubic",
                                                      "width": w, "height": h, "crop": "disabled"}},
        "41": {"class_type": "ImageCompositeMasked",
               "inputs": {"destination": ["1", 0], "source": ["40", 0], "x": x, "y": y, "resize_source": False,
                          "mask": ["32", 0]}},
        "42": {"class_type": "SaveImage", "inputs": {"images": ["41", 0], "filename_prefix": "bench_graph"}},
        **change_map(["41", 0], "bench_graph_changed"),
    })
    return prompt


def versus_graph(args, files, base: Path) -> None:
    """Inpaint Actions against ComfyUI's own graph of the same work, rounds alternating."""
    from PIL import Image

    from cielr_core.editing.execute import EditSettings, action_region
    from cielr_core.editing.stitch import working_size
    from devkit.comfyui import start_comfyui, stop_comfyui

    mask = np.asarray(Image.open(base / "input" / "bench_mask.png").convert("L")) > 127
    window, _, _ = action_region(mask, EditSettings(grow=8, feather=8, context=64, working_size=args.working_size))
    work = working_size(window.width, window.height, args.working_size, 8)
    ckpt = files.inpainting.name
    (base / "models" / "checkpoints" / ckpt).symlink_to(files.inpainting)
    server = start_comfyui(base)
    ours, theirs, outside = [], [], []
    try:
        print("warm-up (loads the checkpoint, encodes the prompts on both sides) ...", flush=True)
        run_timed(server, crop_job(ckpt, 1, args.working_size, seed=1, save_mask=False))
        run_timed(server, graph_job(ckpt, 1, args.working_size, 1, window, work))
        for r in range(args.rounds):
            seed = SEED + 100 + r
            entry, t_ours, _ = run_timed(server, crop_job(ckpt, args.steps, args.working_size, seed=seed,
                                                          save_mask=False))
            ours.append(t_ours)
            report = entry["outputs"]["7"]["text"][0]
            entry, t_graph, _ = run_timed(server, graph_job(ckpt, args.steps, args.working_size, seed, window, work))
            theirs.append(t_graph)
            changed = saved(server, entry, "c8")
            outside.append(int((changed & ~mask).sum()))
            print(f"round {r + 1}: Inpaint Actions {t_ours:.1f} s, ComfyUI graph {t_graph:.1f} s", flush=True)
    finally:
        stop_comfyui(server)
    line = next((ln for ln in report.splitlines() if ln.startswith("action 1")), report)
    mean = lambda v: sum(v) / len(v)
    print()
    print(f"photo: ciebench-dev sample {args.sample} at {args.size}x{args.size}; mask {mask.mean():.2%}; "
          f"checkpoint: random-weight SD1.5 inpainting (UNet stored in fp8, fp32 on CPU); CPU: {os.cpu_count()} cores")
    print(f"window {window.width}x{window.height} at ({window.x0}, {window.y0}) sampled at {work[0]}x{work[1]}; "
          f"{SAMPLER}/{SCHEDULER}, {args.steps} steps, cfg {CFG}; {args.rounds} rounds alternating")
    print(f"Inpaint Actions:  {mean(ours):8.1f} s per action  ({', '.join(f'{t:.1f}' for t in ours)})  [{line}]")
    print(f"ComfyUI graph:    {mean(theirs):8.1f} s per action  ({', '.join(f'{t:.1f}' for t in theirs)})")
    print(f"ratio (ours / graph): {mean(ours) / mean(theirs):.3f}")
    print(f"pixels the graph changed outside the input mask (grow band and resampling): {outside}")


def run_timed(server, prompt: dict) -> tuple[dict, float, MemoryMonitor]:
    from devkit.comfyui import describe, execution_error

    with MemoryMonitor(server.process.pid) as mem:
        entry = server.run(prompt, timeout=3600)
    error = execution_error(entry)
    if error:
        raise RuntimeError(describe(error))
    stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
    seconds = (stamps["execution_success"] - stamps["execution_start"]) / 1000.0
    return entry, seconds, mem


def saved(server, entry: dict, node: str) -> np.ndarray:
    from PIL import Image

    info = entry["outputs"][node]["images"][0]
    with Image.open(server.base / "output" / info["subfolder"] / info["filename"]) as im:
        return np.asarray(im.convert("L")) > 127


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--working-size", type=int, default=512)
    ap.add_argument("--whole-steps", type=int, default=None, help="measure the whole image at 1 and N steps "
                                                                  "and extrapolate (N < steps)")
    ap.add_argument("--size", type=int, default=SIZE, help="photo side in pixels (smaller for a smoke test)")
    ap.add_argument("--sample", type=int, default=7, help="benchmark sample whose photo and mask are used")
    ap.add_argument("--versus-graph", action="store_true", help="Inpaint Actions against ComfyUI's own graph of "
                                                                "the same work on the same crop")
    ap.add_argument("--rounds", type=int, default=2, help="rounds for --versus-graph")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from devkit.comfyui import start_comfyui, stop_comfyui
    from devkit.sd_models import build_sd15_checkpoints

    files = build_sd15_checkpoints(TEST_MODELS)
    base = Path(tempfile.mkdtemp(prefix="cielr-bench-edit-"))
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / files.checkpoint.name).symlink_to(files.checkpoint)
    (base / "custom_nodes" / "cielr_bench_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "cielr_bench_nodes" / "__init__.py").write_text(BENCH_NODE)
    area = prepare_inputs(base, args.sample, args.size)
    if args.versus_graph:
        (base / "models" / "checkpoints" / files.checkpoint.name).unlink()
        versus_graph(args, files, base)
        return
    input_mask = None
    server = start_comfyui(base)
    try:
        ckpt = files.checkpoint.name
        print("warm-up (loads the checkpoint) ...", flush=True)
        run_timed(server, crop_job(ckpt, 1, 64, seed=SEED + 1))  # another seed: the timed job must not hit the cache
        print(f"crop-and-stitch: {args.steps} steps at working size {args.working_size} ...", flush=True)
        crop_entry, crop_s, crop_mem = run_timed(server, crop_job(ckpt, args.steps, args.working_size))
        report = crop_entry["outputs"]["7"]["text"][0]
        out_mask = saved(server, crop_entry, "9")
        crop_changed = saved(server, crop_entry, "c8")
        from PIL import Image

        input_mask = np.asarray(Image.open(base / "input" / "bench_mask.png").convert("L")) > 127
        extrapolated = args.whole_steps is not None and args.whole_steps < args.steps
        if extrapolated:
            n = max(2, args.whole_steps)
            print(f"whole image: 1 and {n} steps (extrapolated to {args.steps}) ...", flush=True)
            _, t1, m1 = run_timed(server, whole_job(ckpt, 1))
            whole_entry, tn, whole_mem = run_timed(server, whole_job(ckpt, n))
            per_step = (tn - t1) / (n - 1)
            whole_s = t1 + per_step * (args.steps - 1)
            whole_mem.peak = max(whole_mem.peak, m1.peak)
        else:
            print(f"whole image: {args.steps} steps at {args.size}x{args.size} ...", flush=True)
            whole_entry, whole_s, whole_mem = run_timed(server, whole_job(ckpt, args.steps))
        whole_changed = saved(server, whole_entry, "c8")
    finally:
        stop_comfyui(server)

    window_line = next((ln for ln in report.splitlines() if ln.startswith("action 1")), report)
    grown_area = float(out_mask.mean())
    print()
    size = args.size
    print(f"photo: ciebench-dev sample {args.sample} at {size}x{size}; mask {area:.2%} of the image "
          f"({int(input_mask.sum())} px); checkpoint: random-weight SD1.5 (UNet stored in fp8, fp32 on CPU)")
    print(f"sampler {SAMPLER}/{SCHEDULER}, {args.steps} steps, cfg {CFG}, seed {SEED}; CPU: {os.cpu_count()} cores")
    print(f"crop-and-stitch: {crop_s:8.1f} s per action   ({window_line})")
    note = f"  EXTRAPOLATED from 1 and {max(2, args.whole_steps)} steps" if extrapolated else ""
    print(f"whole image:     {whole_s:8.1f} s per action   ({size}x{size} sampled){note}")
    print(f"speed-up:        {whole_s / crop_s:8.2f} x")
    crop_px = [int(v) for v in report.split("sampled at ")[1].split(",")[0].split("x")] if "sampled at " in report \
        else [0, 0]
    print(f"area ratio:      {size * size / max(1, crop_px[0] * crop_px[1]):8.2f} x  (whole {size}x{size} sampled "
          f"area / crop working area {crop_px[0]}x{crop_px[1]})")
    print(f"peak RSS of the server: crop-and-stitch {crop_mem.peak / MIB:,.0f} MiB "
          f"(+{(crop_mem.peak - crop_mem.base) / MIB:,.0f} MiB during the job), whole image "
          f"{whole_mem.peak / MIB:,.0f} MiB (+{(whole_mem.peak - whole_mem.base) / MIB:,.0f} MiB)")
    print(f"output MASK: {grown_area:.2%} of the image (input mask grown by 8 px)")
    print(f"changed pixels, crop-and-stitch: {int(crop_changed.sum())} in all, "
          f"{int((crop_changed & ~out_mask).sum())} outside the output MASK, "
          f"{int((crop_changed & ~input_mask).sum())} outside the input mask (all within the grow band)")
    print(f"changed pixels, whole image:     {int(whole_changed.sum())} in all, "
          f"{int((whole_changed & ~input_mask).sum())} outside the input mask (the VAE round trip touches every "
          "pixel)")
    if (crop_changed & ~out_mask).any():
        raise SystemExit("FAILED: pixels changed outside the output MASK")


if __name__ == "__main__":
    main()
