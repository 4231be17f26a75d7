"""Reasoning benchmark: the 20 instructions of ciebench-dev through propose -> refine -> decompose.

SmolLM2-135M-Instruct on the llama.cpp server (started here unless --base-url is given); scenes
come from the tiny random-weight GroundingDINO and SAM test models on the benchmark's real photos
(thresholds 0, so every label gets boxes), which makes the scenes realistic in size, not in
content. Measures per edit: LLM calls, tokens in and out, latency per stage, whether each first
answer was valid, repairs (parse/schema repairs in the backend, plan repairs in decompose).
Targets: calls per edit <= max_rounds + 2, and zero repairs caused by parse errors.

Prompt tokens the server evaluated per edit (after its prefix cache) are read from llama.cpp's own
count: ``timings.prompt_n`` in each reply (llama.cpp's C++ server), else the "prompt eval time ... /
N tokens" lines that llama-cpp-python's server logs per request. A server reuses what the first
request of an edit shares with the last request of the edit before (the rules); "carried" counts
those tokens, so evaluated + carried is what the edit costs on a cold server.

``--compare`` prints this run beside a recorded baseline (``baselines/reasoning.json``: the per-edit
figures of a run of the code named in the file, over the same instructions), so a change to the
prompts or the backends is judged against figures, not against another checkout. Token counts and
validity are deterministic at temperature 0 on the same model and server; seconds depend on the
machine and its load. ``--record-baseline`` writes a new baseline file from this run.

``--local`` compares this pack's local GGUF backend with raw llama-cpp-python on the same file and
the same schema-constrained decomposition request, each in its own process: load + first answer,
seconds per answer, peak RSS (``--local-transformers`` adds the transformers path).

    python benchmarks/reasoning.py                       # all 20, max_rounds 2
    python benchmarks/reasoning.py --limit 3 --json out.json
    python benchmarks/reasoning.py --start 10 --json part2.json   # instructions 10..19
    python benchmarks/reasoning.py --report part1.json part2.json  # one table from saved runs
    python benchmarks/reasoning.py --base-url http://127.0.0.1:11434/v1 --model qwen2.5:7b
    python benchmarks/reasoning.py --compare --limit 5           # beside the recorded baseline
    python benchmarks/reasoning.py --record-baseline             # all 20, then write baselines/reasoning.json
    python benchmarks/reasoning.py --local --answers 5            # local GGUF: pack vs raw llama.cpp
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import DATA, REPO  # (importing it puts the repository on sys.path)

from devkit import SMOLLM2
from devkit.llm_servers import start_llama_server, stop_llama_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
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
    evaluated: int = -1  # prompt tokens the server evaluated (after its prefix cache); -1 unknown
    carried: int = -1  # prompt tokens of the first request cached from the edit before; -1 unknown
    llm_seconds: float = 0.0  # propose + refine + decompose, perception left out

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


BASELINE = Path(__file__).with_name("baselines") / "reasoning.json"
_EVAL = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")


class ServerLog:
    """llama-cpp-python's server log: the prompt tokens llama.cpp evaluated since the mark."""

    def __init__(self, path: Path | None):
        self.path, self.offset = path, 0

    def mark(self) -> None:
        if self.path is not None and self.path.is_file():
            self.offset = self.path.stat().st_size

    def evaluated(self) -> int | None:
        if self.path is None or not self.path.is_file():
            return None
        with self.path.open("rb") as f:
            f.seek(self.offset)
            new = f.read().decode("utf-8", errors="replace")
        counts = [int(n) for n in _EVAL.findall(new)]
        return sum(counts) if counts else None


def tiny_perception(folder: Path):
    from cielr_core.perception import load_grounding_dino, load_sam
    from devkit.gdino_models import build_tiny_gdino
    from devkit.sam_models import build_tiny_sam

    weights, bert = build_tiny_gdino(folder)
    sam = build_tiny_sam(folder / "tiny_sam.pth")
    return load_grounding_dino(weights, bert), load_sam(sam)


def run_edit(index: str, meta: dict, base_url: str, model: str, detector, segmenter, max_rounds: int,
             timeout: float, server_log: ServerLog | None = None) -> Edit:
    from cielr_core.images import load_image
    from cielr_core.llm import RemoteLLM
    from cielr_core.perception import detect_objects, perceive
    from cielr_core.plan import plan_to_json
    from cielr_core.reasoning import decompose_detailed, propose_labels, refine_scene
    from cielr_core.scene import build_scene

    edit = Edit(index, meta["instruction"])
    photo = load_image(DATA / meta["image path"])
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

    def evaluated() -> int | None:
        if llm.usage.prompt_evaluated is not None:
            return llm.usage.prompt_evaluated
        return server_log.evaluated() if server_log is not None else None

    if server_log is not None:
        server_log.mark()  # count from this edit on
    try:
        edit.labels = stage("propose", lambda: propose_labels(llm, meta["instruction"]))
        first = evaluated()
        if first is not None and llm.usage.calls == 1:
            edit.carried = llm.usage.prompt_tokens - first
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
    total = evaluated()
    edit.evaluated = -1 if total is None else total
    edit.llm_seconds = sum(v for k, v in edit.seconds.items() if k != "perceive")
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
             ("| # | calls | tok in | tok evaluated | tok out | propose s | perceive s | refine s "
              "| decompose s | objects | rounds (stop) | first valid | repairs parse/plan | plan or error |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in edits:
        s = e.seconds
        outcome = e.error or e.plan
        lines.append(
            f"| {e.index} | {e.total_calls} | {e.tokens_in} | {_known(e.evaluated)} | {e.tokens_out} | "
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


def _known(n: int) -> str:
    return str(n) if n >= 0 else "?"


def compare_report(sides: dict[str, list[Edit]]) -> str:
    """Two runs side by side (the first is the reference), over the same instructions."""
    names = list(sides)

    def mean(xs):
        return statistics.fmean(xs) if xs else 0.0

    def known_mean(es, name):  # -1 means the server did not say
        xs = [getattr(e, name) for e in es if getattr(e, name) >= 0]
        return f"{mean(xs):.0f}" if xs else "?"

    def row(name, fn):
        return f"| {name} | " + " | ".join(fn(sides[n]) for n in names) + " |"

    lines = ["| per edit (mean) | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names),
             row("edits", lambda es: str(len(es))),
             row("prompt tokens sent (usage.prompt_tokens)", lambda es: f"{mean([e.tokens_in for e in es]):.0f}"),
             row("prompt tokens evaluated by the server (llama.cpp's count)", lambda es: known_mean(es, "evaluated")),
             row("prompt tokens of the first request cached from the edit before (carried)",
                 lambda es: known_mean(es, "carried")),
             row("tokens generated", lambda es: f"{mean([e.tokens_out for e in es]):.0f}"),
             row("LLM calls", lambda es: f"{mean([e.total_calls for e in es]):.2f}"),
             row("LLM seconds (propose + refine + decompose)", lambda es: f"{mean([e.llm_seconds for e in es]):.1f}"),
             row("schema-valid plans", lambda es: f"{sum(1 for e in es if not e.error)} / {len(es)}"),
             row("parse repairs / plan repairs",
                 lambda es: f"{sum(e.parse_repairs for e in es)} / {sum(e.plan_repairs for e in es)}")]
    reference, new = (sides[n] for n in names[:2]) if len(names) == 2 else ([], [])
    if reference and all(e.evaluated >= 0 for e in reference + new):
        before, after = sum(e.evaluated for e in reference), sum(e.evaluated for e in new)
        lines.append(f"\nPrompt tokens evaluated, {names[1]} / {names[0]}: {after} / {before} = "
                     f"{100 * after / max(1, before):.0f}%")
        if all(e.carried >= 0 for e in reference + new):
            before += sum(e.carried for e in reference)
            after += sum(e.carried for e in new)
            lines.append(f"On a cold server (evaluated + carried): {after} / {before} = "
                         f"{100 * after / max(1, before):.0f}%")
    return "\n".join(lines)


def load_baseline(path: Path, edits: list[Edit], model: str, max_rounds: int) -> tuple[str, list[Edit], list[str]]:
    """The baseline's edits for the instructions of ``edits``: (its column name, the edits, warnings)."""
    data = json.loads(path.read_text())
    by_index = {str(row["index"]): load_edit(row) for row in data["edits"]}
    chosen = [by_index[e.index] for e in edits if e.index in by_index]
    warnings = [f"instruction {e.index} is not in the baseline" for e in edits if e.index not in by_index]
    warnings += [f"instruction {b.index} differs from the baseline's" for b, e in
                 zip(chosen, [e for e in edits if e.index in by_index]) if b.instruction != e.instruction]
    for key, value in (("model", model), ("max_rounds", max_rounds)):
        if data.get(key) != value:
            warnings.append(f"the baseline ran with {key} {data.get(key)!r}, this run with {value!r}")
    return f"baseline ({data.get('commit', '?')[:10]}, {data.get('date', '?')})", chosen, warnings


def git_commit() -> str:
    """The commit of this checkout, for the record ("unknown" outside a git checkout)."""
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record_baseline(path: Path, edits: list[Edit], model: str, max_rounds: int, load: str, commit: str) -> None:
    rows = [{**asdict(e), "total_calls": e.total_calls} for e in edits]
    data = {"about": ("Per-edit figures of `python benchmarks/reasoning.py --record-baseline`: the reference "
                      "that --compare prints beside a new run. Token counts, calls and validity are deterministic "
                      "at temperature 0 on the same model and server; seconds depend on the machine and its load."),
            "commit": commit, "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load": load, "model": model, "max_rounds": max_rounds, "edits": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


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
    parser.add_argument("--compare", action="store_true", help="print the run beside the recorded baseline")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help=f"the baseline file (default {BASELINE})")
    parser.add_argument("--record-baseline", action="store_true", help="write --baseline from this run")
    parser.add_argument("--local", action="store_true", help="local GGUF: this pack against raw llama-cpp-python")
    parser.add_argument("--local-transformers", action="store_true", help="with --local: the transformers path too")
    parser.add_argument("--answers", type=int, default=5, help="with --local: answers timed after the first")
    parser.add_argument("--local-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.local_worker:
        from local_gguf import worker

        worker(args.local_worker, SMOLLM2, args.answers)
        return
    if args.local:
        from local_gguf import compare

        print(compare(SMOLLM2, args.answers, args.local_transformers))
        return
    if args.report:
        edits = sorted((load_edit(row) for path in args.report for row in json.loads(path.read_text())),
                       key=lambda e: int(e.index))
    else:
        edits = run_all(args)
    print()
    print(report(edits, args.max_rounds, args.model))
    if args.compare:
        name, reference, warnings = load_baseline(args.baseline, edits, args.model, args.max_rounds)
        print()
        print(compare_report({name: reference, "this run": [e for e in edits if e.index in
                                                            {b.index for b in reference}]}))
        for w in warnings:
            print(f"note: {w}")


def run_all(args: argparse.Namespace) -> list[Edit]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the server started here stops too
    data = json.loads((DATA / "data.json").read_text())
    keys = sorted(data, key=int)[args.start:]
    keys = keys[: args.limit or None]
    load_before, commit = load_average(), git_commit()  # the code that runs, before anything changes it
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        base_url, server_log = args.base_url, ServerLog(None)
        if base_url is None:
            server = start_llama_server(SMOLLM2, Path(tmp))
            servers.callback(stop_llama_server, server)
            base_url, server_log = server.base_url, ServerLog(server.log)
        detector, segmenter = tiny_perception(Path(tmp) / "models")
        edits = []
        for k in keys:
            edit = run_edit(k, data[k], base_url, args.model, detector, segmenter, args.max_rounds,
                            args.timeout, server_log)
            edits.append(edit)
            if args.json:  # saved as it goes: a run that is cut off keeps what it measured
                rows = [{**asdict(e), "total_calls": e.total_calls} for e in edits]
                args.json.write_text(json.dumps(rows, indent=1))
            stages = ", ".join(f"{name} {sec:.0f} s/{edit.calls.get(name, 0)} calls"
                               for name, sec in edit.seconds.items())
            print(f"[{k}] {edit.total_calls} calls, tokens {edit.tokens_in} sent/"
                  f"{_known(edit.evaluated)} evaluated ({_known(edit.carried)} carried)/{edit.tokens_out} out, "
                  f"{stages}: {edit.error or edit.plan}", flush=True)
    if args.record_baseline:
        record_baseline(args.baseline, edits, args.model, args.max_rounds,
                        f"load average (1, 5, 15 min) {load_before} at the start, {load_average()} at the end", commit)
        print(f"baseline written to {args.baseline}")
    return edits


if __name__ == "__main__":
    main()
