"""The Ray path of ``bench`` against the single-process runner, over the same ciebench-dev samples with
the oracle and the tiny random-weight diffusers engine (docs/benchmarks.md, "Runs on Ray").

    python benchmarks/ray_runs.py [--rounds 4] [--working-size 64] [--steps 1]

Per round, in this order: the single-process runner (one worker: this process), Ray with one worker,
Ray with two workers; each into a fresh output folder. Every worker runs torch on one thread (a Ray
worker reserving one CPU gets OMP_NUM_THREADS=1; this process is set the same), so the single process
and a Ray worker do the same work per sample.

A run's steady-state time per sample is read from its records: each sample's record file is written
when its result comes back, so the median interval between consecutive writes is the time per sample
once the workers are up, free of Ray's start and the workers' model loads (printed apart) and robust
to the other jobs that share this machine; the table takes the median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # as a Ray worker with one CPU; before torch is imported

from common import CACHE, DATA  # noqa: E402  (importing it puts the repository on sys.path)

MODELS = CACHE / "bench-models" / "tiny-sd"


def tiny_engine() -> Path:
    if not (MODELS / "model_index.json").is_file():
        from devkit.sd_models import build_tiny_inpaint_pipeline

        build_tiny_inpaint_pipeline(MODELS)
    return MODELS


def settings(working_size: int, steps: int):
    from cielr_core.__main__ import build_parser
    from cielr_core.config import resolve_settings

    args = build_parser().parse_args(["bench", str(DATA), "--out", "x", "--oracle", "--inpaint", str(tiny_engine()),
                                      "--steps", str(steps), "--cfg", "1", "--working-size", str(working_size),
                                      "--context", "16", "--sizes", "256"])
    return resolve_settings(args)


def one_run(out: Path, s, cluster) -> dict:
    """One bench run into ``out``: its steady time per sample, wall time and the workers' model loads."""
    from cielr_core.bench.options import BenchOptions
    from cielr_core.bench.runner import run_bench
    from cielr_core.cli.bench import BenchLoader, bench_fingerprint

    start = time.perf_counter()
    run_bench(BenchOptions(dataset=DATA, out=out, oracle=True, sizes=(256,), progress=False),
              BenchLoader(s, (Path(s.models_inpaint), None), None, llm=False), bench_fingerprint(s, True, {}),
              cluster=cluster)
    wall = time.perf_counter() - start
    records = [p for p in (out / "samples").glob("*.json") if '"stage": "dataset"' not in p.read_text()]
    done = sorted(p.stat().st_mtime_ns / 1e9 for p in records)
    inside = statistics.median(json.loads(p.read_text())["seconds"]["total"] for p in records)
    session = json.loads((out / "run.json").read_text())["sessions"][-1]
    gaps = [b - a for a, b in zip(done, done[1:])]
    return {"samples": len(done), "per_sample": statistics.median(gaps), "inside": inside, "wall": wall,
            "load": [w["load_seconds"] for w in session["workers"]]}


def write_cost(out: Path, repeats: int = 20) -> tuple[float, int]:
    """Seconds this process spends writing one sample's result (its record and two PNGs, atomically, with
    fsync), the bound on the samples per second one writer takes in; and the bytes written."""
    from cielr_core.runs.files import write_atomic

    record = sorted((out / "samples").glob("*.json"))[0]
    files = [record, *sorted((out / "images").glob(f"{record.stem}*.png"))]
    data = [(f.name, f.read_bytes()) for f in files]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i in range(repeats):
            for name, blob in data:
                write_atomic(Path(tmp) / f"{i}-{name}", blob)
        return (time.perf_counter() - start) / repeats, sum(len(b) for _, b in data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--working-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from cielr_core.runs.cluster import ClusterOptions, connect

    s = settings(args.working_size, args.steps)
    # Ray kills its workers when the whole machine is short of memory; here other jobs share it
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    t0 = time.perf_counter()
    ray, _ = connect(ClusterOptions())
    ray_start = time.perf_counter() - t0
    sides = {"one process": None, "Ray, 1 worker": ClusterOptions(workers=1),
             "Ray, 2 workers": ClusterOptions(workers=2)}
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    load = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for name, cluster in sides.items():
                    folder = Path(tmp) / f"{r}-{name.replace(' ', '_').replace(',', '')}"
                    fig = one_run(folder, s, cluster)
                    if r == 0 and cluster is None:
                        writing = write_cost(folder)
                    runs[name].append(fig)
                    print(f"round {r + 1} {name}: {fig['samples']} samples, {fig['per_sample']:.3f} s per sample "
                          f"(steady; {fig['inside']:.3f} s inside the worker), wall {fig['wall']:.1f} s, model load "
                          f"{fig['load']}", flush=True)
    finally:
        ray.shutdown()
    load_after = os.getloadavg()
    base = statistics.median(f["per_sample"] for f in runs["one process"])
    one = statistics.median(f["per_sample"] for f in runs["Ray, 1 worker"])
    two = statistics.median(f["per_sample"] for f in runs["Ray, 2 workers"])
    print(f"\nRay start (local, this machine): {ray_start:.1f} s; load average {load[0]:.1f} before, "
          f"{load_after[0]:.1f} after; working size {args.working_size}, {args.steps} step(s), torch on 1 thread")
    print("| run | s per sample (median of rounds) | samples per s | s inside the worker per sample | "
          "wall s (median) |")
    print("|---|---:|---:|---:|---:|")
    for name in sides:
        med = statistics.median(f["per_sample"] for f in runs[name])
        inside = statistics.median(f["inside"] for f in runs[name])
        wall = statistics.median(f["wall"] for f in runs[name])
        print(f"| {name} | {med:.3f} | {1 / med:.2f} | {inside:.3f} | {wall:.1f} |")
    print(f"\nRay overhead per sample with one worker: {100 * (one - base) / base:+.1f}% (target <= 10%)")
    print(f"Throughput, two workers / one: {one / two:.2f}x")
    print(f"This process writing one sample's result (record + 2 PNGs, {writing[1] / 1024:.0f} KiB, atomic, fsync): "
          f"{1000 * writing[0]:.1f} ms, so one writer takes in at most {1 / writing[0]:.0f} samples per s")


if __name__ == "__main__":
    sys.exit(main())
