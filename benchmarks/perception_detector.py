"""Detection time against the number of labels, full-size GroundingDINO SwinT-OGC on a real photo.

Labels are packed into captions of at most 256 tokens, so the time should follow the number of
forward passes, not the number of labels. Random weights are fine: the cost is the architecture's.

``--compare`` runs the same file through the pack (transformers, converted at load) and through
groundingdino-py (the implementation the pack used before; a test requirement), each in its own
child process, alternating, and prints seconds per detect, load time and each child's peak RSS side
by side, plus how far their detections differ.

    python benchmarks/perception_detector.py                 # builds the random-weight files once
    python benchmarks/perception_detector.py --weights groundingdino_swint_ogc.pth \
        --text-encoder bert-base-uncased/
    python benchmarks/perception_detector.py --compare --labels 8 --rounds 2
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COLOURS = ("red", "blue", "green", "white", "black", "brown")
OBJECTS = ("cup", "table", "tv", "lamp", "speaker", "chair", "sofa", "person", "bottle", "vase", "plant",
           "book", "clock", "pillow", "rug", "window", "door", "shelf", "cabinet", "laptop", "remote",
           "plate", "bowl", "mirror", "curtain", "picture", "bed", "desk", "keyboard", "phone", "bag", "box")


def bench_labels(n: int) -> list[str]:
    """``n`` distinct two-word labels ("red cup", ...), three tokens each in a caption."""
    labels = [f"{c} {o}" for c in COLOURS for o in OBJECTS]
    if n > len(labels):
        raise ValueError(f"at most {len(labels)} labels")
    return labels[:n]


def default_models() -> tuple[Path, Path]:
    """Full-size random-weight groundingdino_swint_ogc.pth + bert-base-uncased, built once."""
    from devkit import CACHE
    from devkit.gdino_models import build_full_bert, build_full_release

    cache = CACHE / "test-models"
    return build_full_release(cache, "SwinT-OGC"), build_full_bert(cache)


IMPLEMENTATIONS = ("transformers", "groundingdino-py")


def bench_detector(weights: str | Path | None = None, text_encoder: str | Path | None = None,
                   label_counts: Sequence[int] = (1, 8, 32, 96), image: Any = None, short_side: int = 800,
                   repeats: int = 1, device: str = "cpu",
                   implementation: str = "transformers") -> dict[str, Any]:
    """Seconds per ``detect`` call and forward passes for each label count (best of ``repeats``).

    ``implementation``: the pack's loader ("transformers"), or "groundingdino-py" for a released
    checkpoint run by the reference implementation (devkit/gdino_reference.py)."""
    import torch

    from cielr_core.perception.detector import load_grounding_dino

    if implementation == "groundingdino-py":
        from devkit.gdino_reference import load_reference

        def load_grounding_dino(weights: Any, text_encoder: Any, device: str) -> Any:  # noqa: F811
            return load_reference(weights, text_encoder).to(device)

    if weights is None:
        weights, text_encoder = default_models()
    if image is None:
        from devkit import load_photo

        image = load_photo(0)
    start = time.perf_counter()
    detector = load_grounding_dino(weights, text_encoder, device=device)
    load_s = time.perf_counter() - start
    calls: list[int] = []
    hook = detector.model.register_forward_hook(lambda *_: calls.append(1))
    detector.short_side = 224
    detector.detect(image, ["cup"])  # warm-up: one-time allocations, not counted
    detector.short_side = short_side
    rows = []
    try:
        for n in label_counts:
            labels = bench_labels(n)
            seconds = []
            for _ in range(repeats):
                calls.clear()
                t = time.perf_counter()
                found = detector.detect(image, labels, box_threshold=0.3, text_threshold=0.25)
                seconds.append(time.perf_counter() - t)
            rows.append({"labels": n, "passes": len(calls), "seconds": min(seconds), "seconds_all": seconds,
                         "detections": len(found),
                         "found": {"boxes": found.boxes.tolist(), "scores": found.scores.tolist(),
                                   "labels": list(found.labels)}})
    finally:
        hook.remove()
    return {"architecture": detector.name, "implementation": implementation, "load_s": load_s,
            "image": tuple(image.shape[:2]), "short_side": short_side, "threads": torch.get_num_threads(),
            "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    h, w = result["image"]
    lines = [f"GroundingDINO {result['architecture']} (random weights), photo {w}x{h} scaled to short side "
             f"{result['short_side']}, {result['threads']} CPU threads; load {result['load_s']:.1f} s",
             "| labels | forward passes | seconds | s / pass | detections |",
             "|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        per_pass = r["seconds"] / max(1, r["passes"])
        lines.append(f"| {r['labels']} | {r['passes']} | {r['seconds']:.1f} | {per_pass:.1f} "
                     f"| {r['detections']} |")
    return "\n".join(lines)


# --- the pack's transformers path against groundingdino-py, side by side ---------------------


def run_child(implementation: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One implementation in a fresh process: its timings and its lifetime peak RSS."""
    command = [sys.executable, __file__, "--child", implementation, "--json", str(out), "--labels",
               *map(str, args.labels), "--short-side", str(args.short_side), "--repeats", str(args.repeats)]
    if args.weights:
        command += ["--weights", args.weights, "--text-encoder", args.text_encoder]
    subprocess.run(command, check=True, cwd=REPO)
    return json.loads(out.read_text())


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``args.rounds`` rounds, each running both implementations (alternating which goes first)."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1]
            for implementation in order:
                results.append(run_child(implementation, args, Path(tmp) / f"{r}-{implementation}.json"))
    return results


def agreement(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How many of one run's detections the other has too (same label, box within 0.01 px)."""
    import numpy as np

    fa, fb = a["rows"][-1]["found"], b["rows"][-1]["found"]
    boxes_b = np.array(fb["boxes"]).reshape(-1, 4)
    matched, worst = 0, 0.0
    for label, box in zip(fa["labels"], fa["boxes"]):
        same = [i for i, other in enumerate(fb["labels"]) if other == label]
        if same:
            gap = float(np.abs(boxes_b[same] - np.array(box)).max(axis=1).min())
            if gap <= 0.01:
                matched, worst = matched + 1, max(worst, gap)
    in_order = sum(x == y for x, y in zip(fa["labels"], fb["labels"]))
    return (f"{matched} of {len(fa['labels'])} ({len(fb['labels'])}) detections in both (same label, boxes "
            f"within {worst:.2g} px); {in_order} with the same label at the same rank")


def format_comparison(results: list[dict[str, Any]]) -> str:
    first = results[0]
    h, w = first["image"]
    labels = first["rows"][-1]["labels"]
    lines = [f"GroundingDINO {first['architecture']} (random weights), photo {w}x{h} at short side "
             f"{first['short_side']}, {labels} labels, {first['threads']} CPU threads; "
             f"{len(results) // 2} rounds, each implementation in its own process",
             "| implementation | load s | seconds per detect (best) | all detect runs (s) | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|"]
    for name in IMPLEMENTATIONS:
        mine = [r for r in results if r["implementation"] == name]
        runs = [r["rows"][-1]["seconds_all"] for r in mine]
        flat = [x for run in runs for x in run]
        lines.append(f"| {name} | {min(r['load_s'] for r in mine):.1f} | {min(flat):.1f} | "
                     f"{', '.join(f'{x:.1f}' for x in flat)} | {max(r['ru_maxrss_mib'] for r in mine):.0f} |")
    new, old = ([r for r in results if r["implementation"] == n][0] for n in IMPLEMENTATIONS)
    lines.append(f"Detections: {agreement(new, old)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a GroundingDINO .pth/.safetensors or HF folder "
                                          "(default: random-weight SwinT-OGC)")
    parser.add_argument("--text-encoder", help="bert-base-uncased folder (for .pth weights)")
    parser.add_argument("--labels", type=int, nargs="+", default=None,
                        help="label counts (default 1 8 32 96; with --compare 8)")
    parser.add_argument("--short-side", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--compare", action="store_true",
                        help="the pack's transformers path against groundingdino-py, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="with --compare: runs of each implementation")
    parser.add_argument("--child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare:
        args.labels = args.labels or [8]
        print(format_comparison(compare(args)))
        return
    args.labels = args.labels or [1, 8, 32, 96]
    result = bench_detector(args.weights, args.text_encoder, args.labels, short_side=args.short_side,
                            repeats=args.repeats, implementation=args.child or "transformers")
    if args.child:
        result["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        Path(args.json).write_text(json.dumps(result))
        return
    print(format_table(result))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    main()
