"""The CIEBench tables of docs/benchmarks.md: `python -m cielr_core bench` on ciebench-dev, on this CPU.

    python benchmarks/ciebench.py [--out runs/ciebench] [--limit N] [--steps 4]

Two runs of the real command line, each resumable in its own folder under --out:

- oracle: the ground-truth masks as the plan's regions (no perception, no LLM), which proves the
  background stays bit-exact on every sample;
- pipeline: the whole method with the test models: tiny random-weight GroundingDINO and SAM,
  SmolLM2-135M-Instruct on a llama.cpp server started here, and the tiny random-weight diffusers
  inpainting pipeline.

Random weights make the edits themselves meaningless, so these tables measure the harness, the
protocol, failure accounting, time per stage and memory, not editing quality. The models are built
(seconds) into ~/.cache/cielr/bench-models on first use.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from common import CACHE, DATA, REPO  # (importing it puts the repository on sys.path)

MODELS = CACHE / "bench-models"


def build_models(root: Path) -> Path:
    """A ComfyUI-style models folder with the tiny test models (built once)."""
    from devkit.gdino_models import build_tiny_gdino
    from devkit.sam_models import build_tiny_sam
    from devkit.sd_models import build_tiny_inpaint_pipeline

    if (root / "ready").is_file():
        return root
    weights, bert = build_tiny_gdino(root / "grounding-dino")
    if Path(bert) != root / "bert-base-uncased":
        Path(bert).rename(root / "bert-base-uncased")
    build_tiny_sam(root / "sams" / "sam_tiny.pth")
    build_tiny_inpaint_pipeline(root / "diffusers" / "tiny-sd")
    (root / "ready").write_text(Path(weights).name)
    return root


def bench(out: Path, *args: str) -> None:
    command = [sys.executable, "-m", "cielr_core", "bench", str(DATA), "--out", str(out), *args]
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run(command, check=True, env=env)  # noqa: S603 (our own command line, fixed arguments)
    print((out / "summary.md").read_text(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "ciebench")
    ap.add_argument("--limit", type=int, default=0, help="only the first N samples")
    ap.add_argument("--steps", type=int, default=4, help="sampling steps per action")
    ap.add_argument("--skip-oracle", action="store_true")
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    from devkit import SMOLLM2
    from devkit.llm_servers import start_llama_server, stop_llama_server

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the LLM server started here stops too
    models = build_models(MODELS)
    gdino = (models / "ready").read_text()
    limit = ["--limit", str(args.limit)] if args.limit else []
    edit = ["--steps", str(args.steps), "--cfg", "7.5", "--working-size", "256", "--seed", "1"]
    common = ["--models-dir", str(models), "--inpaint", "tiny-sd", "-q", *edit, *limit]
    if not args.skip_oracle:
        bench(args.out / "oracle", "--oracle", *common)
    if not args.skip_pipeline:
        args.out.mkdir(parents=True, exist_ok=True)
        llm = start_llama_server(SMOLLM2, args.out)
        try:
            bench(args.out / "pipeline", *common, "--gdino", gdino, "--sam", "sam_tiny.pth",
                  "--box-threshold", "0.0", "--text-threshold", "0.0", "--max-rounds", "2",
                  "--llm-url", llm.base_url, "--llm-model", "smollm2", "--llm-temperature", "0",
                  "--llm-timeout", "300")
        finally:
            stop_llama_server(llm)


if __name__ == "__main__":
    main()
