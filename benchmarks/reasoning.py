"""Reasoning benchmark: the 20 instructions of ciebench-dev through propose -> refine -> decompose.

SmolLM2-135M-Instruct on the llama.cpp server (started here unless --base-url is given); scenes
come from the tiny random-weight GroundingDINO and SAM test models on the benchmark's real photos
(thresholds 0, so every label gets boxes), which makes the scenes realistic in size, not in
content. Measures per edit: LLM calls, tokens in and out, latency per stage, whether each first
answer was valid, repairs (parse/schema repairs in the backend, plan repairs in decompose).
Targets: calls per edit <= max_rounds + 2, and zero repairs caused by parse errors.

    python benchmarks/reasoning.py                       # all 20, max_rounds 2
    python benchmarks/reasoning.py --limit 3 --json out.json
    python benchmarks/reasoning.py --start 10 --json part2.json   # instructions 10..19
    python benchmarks/reasoning.py --report part1.json part2.json  # one table from saved runs
    python benchmarks/reasoning.py --base-url http://127.0.0.1:11434/v1 --model qwen2.5:7b
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import CACHE, DATA  # (importing it puts the repository on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SMOLLM2 = Path(os.environ.get("CIELR_SMOLLM2", CACHE / "llm" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
STAGES = ("propose", "perceive", "refine", "decompose")


@dataclass
class Edit:
    index: str
    instruction: str
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    answers: int = 0
    first_valid: int = 0
    parse_repairs: int = 0  # repair rounds in the backend (answer not valid JSON of the schema)
    plan_repairs: int = 0  # repair rounds in decompose (valid answer, plan not runnable)
    objects: tuple[int, int] = (0, 0)  # before and after refinement
    rounds: int = 0
    stop: str = ""
    labels: list[str] = field(default_factory=list)
    plan: str = ""
    error: str = ""

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(model: Path, log: Path) -> tuple[subprocess.Popen, str]:
    import requests

    if not model.is_file():
        sys.exit(f"SmolLM2 GGUF not found at {model}: run scripts/setup_env.sh or set CIELR_SMOLLM2")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"llama.cpp server exited:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/models", timeout=2).ok:
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit("llama.cpp server not ready after 120 s")


def tiny_perception(folder: Path):
    from cielr_core.perception import load_grounding_dino, load_sam
    from tests.fixtures.gdino_models import build_tiny_gdino
    from tests.fixtures.sam_models import build_tiny_sam

    weights, bert = build_tiny_gdino(folder)
    sam = build_tiny_sam(folder / "tiny_sam.pth")
    return load_grounding_dino(weights, bert), load_sam(sam)


def run_edit(index: str, meta: dict, base_url: str, model: str, detector, segmenter, max_rounds: int,
             timeout: float) -> Edit:
    from PIL import Image

    from cielr_core.llm import RemoteLLM
    from cielr_core.perception import detect_objects, perceive
    from cielr_core.plan import plan_to_json
    from cielr_core.reasoning import decompose_detailed, propose_labels, refine_scene
    from cielr_core.scene import build_scene

    edit = Edit(index, meta["instruction"])
    with Image.open(DATA / meta["image path"]) as im:
        import numpy as np

        photo = np.asarray(im.convert("RGB"))
    llm = RemoteLLM(base_url, model, temperature=0.0, seed=0, timeout=timeout)

    def stage(name, fn):
        calls = llm.usage.calls
        start = time.perf_counter()
        try:
            return fn()
        finally:
            edit.seconds[name] = time.perf_counter() - start
            edit.calls[name] = llm.usage.calls - calls

    def detect(labels, within):
        return detect_objects(photo, detector, segmenter, labels, within=within, box_threshold=0.0,
                              text_threshold=0.0)

    try:
        edit.labels = stage("propose", lambda: propose_labels(llm, meta["instruction"]))
        scene = stage("perceive", lambda: build_scene(perceive(photo, detector, segmenter, edit.labels,
                                                               box_threshold=0.0, text_threshold=0.0)))
        refined = stage("refine", lambda: refine_scene(scene, meta["instruction"], llm, detect,
                                                       max_rounds=max_rounds))
        edit.objects, edit.rounds, edit.stop = (len(scene.objects), len(refined.scene.objects)), \
            len(refined.rounds), refined.stop
        result = stage("decompose", lambda: decompose_detailed(refined.scene, meta["instruction"], llm))
        edit.plan_repairs = int(result.repaired)
        edit.plan = plan_to_json(result.plan, indent=None)
    except Exception as e:  # noqa: BLE001 (an error is a result here: count it and go on)
        edit.error = f"{type(e).__name__}: {e}"[:300]
    u = llm.usage
    edit.tokens_in, edit.tokens_out = u.prompt_tokens, u.completion_tokens
    edit.answers, edit.first_valid, edit.parse_repairs = u.answers, u.first_valid, u.repairs
    return edit


def load_edit(row: dict) -> Edit:
    known = {f for f in Edit.__dataclass_fields__}
    edit = Edit(**{k: v for k, v in row.items() if k in known})
    edit.objects = tuple(edit.objects)
    return edit


def report(edits: list[Edit], max_rounds: int, model: str) -> str:
    lines = [f"Reasoning benchmark: {len(edits)} edits, model {model}, max_rounds {max_rounds}", "",
             ("| # | calls | tok in | tok out | propose s | perceive s | refine s | decompose s | objects "
              "| rounds (stop) | first valid | repairs parse/plan | plan or error |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in edits:
        s = e.seconds
        outcome = e.error or e.plan
        lines.append(
            f"| {e.index} | {e.total_calls} | {e.tokens_in} | {e.tokens_out} | "
            + " | ".join(f"{s.get(k, 0):.1f}" for k in STAGES)
            + f" | {e.objects[0]}->{e.objects[1]} | {e.rounds} ({e.stop}) | {e.first_valid}/{e.answers} | "
              f"{e.parse_repairs}/{e.plan_repairs} | {outcome[:90].replace('|', '/')} |")

    def mean(xs):
        return statistics.fmean(xs) if xs else 0.0

    answers = sum(e.answers for e in edits)
    calls = [e.total_calls for e in edits]
    lines += ["", "| measure | value |", "|---|---|",
              f"| edits with a valid plan | {sum(1 for e in edits if not e.error)} / {len(edits)} |",
              (f"| LLM calls per edit (mean / max; target <= {max_rounds + 2}) | {mean(calls):.2f} / "
               f"{max(calls, default=0)} |"),
              f"| edits over the call target | {sum(1 for c in calls if c > max_rounds + 2)} |",
              f"| tokens in per edit (mean) | {mean([e.tokens_in for e in edits]):.0f} |",
              f"| tokens out per edit (mean) | {mean([e.tokens_out for e in edits]):.0f} |",
              (f"| first answers valid | {sum(e.first_valid for e in edits)} / {answers} "
               f"({100 * sum(e.first_valid for e in edits) / max(1, answers):.0f}%) |"),
              f"| repairs caused by parse/schema errors (target 0) | {sum(e.parse_repairs for e in edits)} |",
              f"| plan repair rounds | {sum(e.plan_repairs for e in edits)} |"]
    for k in STAGES:
        xs = [e.seconds[k] for e in edits if k in e.seconds]
        if xs:
            lines.append(f"| latency {k} (mean / median / max, s) | {mean(xs):.1f} / "
                         f"{statistics.median(xs):.1f} / {max(xs):.1f} |")
    llm_calls = {k: mean([e.calls.get(k, 0) for e in edits]) for k in ("propose", "refine", "decompose")}
    per_stage = ", ".join(f"{k} {v:.2f}" for k, v in llm_calls.items())
    lines.append(f"| LLM calls per stage (mean) | {per_stage} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible server (default: llama.cpp with SmolLM2)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--max-rounds", type=int, default=2)
    parser.add_argument("--start", type=int, default=0, help="skip the first N instructions")
    parser.add_argument("--limit", type=int, default=0, help="run at most N instructions")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per LLM request")
    parser.add_argument("--json", type=Path, help="write the per-edit results here, after every edit")
    parser.add_argument("--report", type=Path, nargs="+", help="print one table from saved --json files")
    args = parser.parse_args(argv)
    if args.report:
        edits = sorted((load_edit(row) for path in args.report for row in json.loads(path.read_text())),
                       key=lambda e: int(e.index))
        print(report(edits, args.max_rounds, args.model))
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the server started here stops too
    data = json.loads((DATA / "data.json").read_text())
    keys = sorted(data, key=int)[args.start:]
    keys = keys[: args.limit or None]
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        base_url = args.base_url
        if base_url is None:
            server, base_url = start_llama_server(SMOLLM2, Path(tmp) / "llama.log")
        try:
            detector, segmenter = tiny_perception(Path(tmp) / "models")
            edits = []
            for k in keys:
                edit = run_edit(k, data[k], base_url, args.model, detector, segmenter, args.max_rounds,
                                args.timeout)
                edits.append(edit)
                if args.json:  # saved as it goes: a run that is cut off keeps what it measured
                    rows = [{**asdict(e), "total_calls": e.total_calls} for e in edits]
                    args.json.write_text(json.dumps(rows, indent=1))
                stages = ", ".join(f"{name} {sec:.0f} s/{edit.calls.get(name, 0)} calls"
                                   for name, sec in edit.seconds.items())
                print(f"[{k}] {edit.total_calls} calls, tokens {edit.tokens_in}/{edit.tokens_out}, {stages}: "
                      f"{edit.error or edit.plan}", flush=True)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
    print()
    print(report(edits, args.max_rounds, args.model))


if __name__ == "__main__":
    main()
