"""Seconds per action and peak memory of CIELR Inpaint Actions for each checkpoint family, on this CPU.

    python benchmarks/families.py [--steps 2] [--working-size 256] [--sample 7] [--only flux1-dev,...]

Uses the tests' random-weight models (devkit/family_models.py; built on first use) in a
real ComfyUI server: the diffusion models cut to the blocks ComfyUI's detection needs (``DEPTH``
below, printed with the table), VAEs at full size. Text encoders are the tests' stand-ins of the real
conditioning shape (the real ones are 5-17 GB). So the figures show the per-action overhead of each
family's path (VAE, conditioning, a one-block transformer) at the real widths (SDXL's UNet at 320
throughout), not a full model's speed: a full model costs about (its blocks / these blocks) times the
sampling part.

Per family: one job that loads the models (cold), then one replace action on a real photo's object
mask (warm, new seed). Seconds per action are the node's own per-action figure from its report;
peak RSS is the server's during both jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

from common import CACHE, MIB, MemoryMonitor  # (importing it puts the repository on sys.path)
from editing import BENCH_NODE, prepare_inputs

DEPTH = {"sdxl": "input blocks' transformers full, middle + output 1 transformer, 320 wide",
         "flux1": "1 of 19 double, 0 of 38 single blocks", "flux2": "1 of 8 double, 0 of 48 single blocks",
         "qwen": "1 of 60 blocks", "z-image": "1 of 30 layers (+2+2 refiner)"}  # devkit/build_family_models.py


def job(case, steps: int, working_size: int, seed: int, log_file: str) -> dict:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "bench_photo.png"}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": "bench_mask.png", "channel": "red"}},
        "3": {"class_type": "CIELRBenchSceneFromMask", "inputs": {"mask": ["2", 0], "label": "table"}},
        "4": {"class_type": "CIELRPlanFromJSON", "inputs": {"scene": ["3", 0], "plan_json": json.dumps(
            {"actions": [{"op": "replace", "targets": [1], "prompt": "a wooden table with a bowl of fruit"}]})}},
        **case.loaders,
        "8": {"class_type": "CIELRTestRecordSampling",
              "inputs": {"model": ["10", 0], "vae": ["12", 0] if "12" in case.loaders else ["10", 2],
                         "log_file": log_file}},
        "9": {"class_type": "CIELRTestTextEncoder", "inputs": {"family": case.clip}},
        "11": {"class_type": "CIELRInpaintActions",
               "inputs": {"image": ["1", 0], "scene": ["3", 0], "plan": ["4", 0], "model": ["8", 0], "clip": ["9", 0],
                          "vae": ["8", 1], "seed": seed, "steps": steps, "cfg": case.cfg, "sampler_name": "euler",
                          "scheduler": "normal", "grow": 8, "feather": 8, "context": 64, "working_size": working_size,
                          "negative": "", "background_prompt": "background", "recolor_denoise": 0.6,
                          "guidance": case.guidance_input, "edit_mode": case.edit_mode}},
        "13": {"class_type": "PreviewAny", "inputs": {"source": ["11", 3]}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "bench_family"}},
    }
    return prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--working-size", type=int, default=256)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--sample", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated case ids (default: all)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from devkit.comfyui import TEST_NODES, describe, execution_error, start_comfyui, stop_comfyui
    from devkit.family_models import CASES, build_family_models, link_models

    cases = [c for c in CASES if not args.only or c.id in args.only.split(",")]
    paths = build_family_models(CACHE / "test-models")
    base = Path(tempfile.mkdtemp(prefix="cielr-bench-families-"))
    link_models(paths, base / "models")
    (base / "custom_nodes" / "cielr_bench_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "cielr_bench_nodes" / "__init__.py").write_text(BENCH_NODE)
    (base / "custom_nodes" / "cielr_test_nodes").symlink_to(TEST_NODES)
    area = prepare_inputs(base, args.sample, args.size)
    rows = []
    server = start_comfyui(base)
    try:
        for case in cases:
            import requests

            requests.post(f"{server.url}/free", json={"unload_models": True, "free_memory": True}, timeout=60)
            print(f"{case.id} ...", flush=True)
            log = str(base / f"{case.id}.jsonl")
            with MemoryMonitor(server.process.pid) as mem:
                cold = server.run(job(case, args.steps, args.working_size, 1, log), timeout=3600)
                warm = server.run(job(case, args.steps, args.working_size, 2, log), timeout=3600)
            for entry in (cold, warm):
                if execution_error(entry):
                    raise RuntimeError(f"{case.id}: {describe(execution_error(entry))}")
            report = warm["outputs"]["13"]["text"][0]
            seconds = [float(v) for v in re.findall(r"pixels changed, ([0-9.]+) s", report)]
            stamps = {k: d.get("timestamp") for k, d in cold["status"]["messages"]}
            cold_s = (stamps["execution_success"] - stamps["execution_start"]) / 1000.0
            path = report.splitlines()[0].split(";")[0]
            work = re.search(r"sampled at (\d+x\d+)", report).group(1)
            rows.append((case.id, path, work, sum(seconds) / len(seconds), cold_s, mem.peak / MIB))
    finally:
        stop_comfyui(server)

    print()
    print(f"photo: ciebench-dev sample {args.sample} at {args.size}x{args.size} (mask {area:.2%}); one replace "
          f"action; euler/normal, {args.steps} steps, working size {args.working_size}; CPU: {os.cpu_count()} cores")
    print("| case | model (path) | sampled at | s per action (warm) | first job incl. loading, s | peak RSS, MiB |")
    print("|---|---|---|---|---|---|")
    for case_id, path, work, per_action, cold_s, peak in rows:
        print(f"| {case_id} | {path} | {work} | {per_action:.1f} | {cold_s:.1f} | {peak:,.0f} |")
    print("depth reductions: " + "; ".join(f"{k}: {v}" for k, v in DEPTH.items()))


if __name__ == "__main__":
    main()
