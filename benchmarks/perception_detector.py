"""Detection time against the number of labels, full-size GroundingDINO SwinT-OGC on a real photo.

Labels are packed into captions of at most 256 tokens, so the time should follow the number of
forward passes, not the number of labels. Random weights are fine: the cost is the architecture's.

    python benchmarks/perception_detector.py                 # builds the random-weight files once
    python benchmarks/perception_detector.py --weights groundingdino_swint_ogc.pth \
        --text-encoder bert-base-uncased/
"""

from __future__ import annotations

import argparse
import os
import sys
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
    from tests.fixtures.gdino_models import build_full_bert, build_full_release

    cache = Path(os.environ.get("CIELR_CACHE", Path.home() / ".cache" / "cielr")) / "test-models"
    return build_full_release(cache, "SwinT-OGC"), build_full_bert(cache)


def bench_detector(weights: str | Path | None = None, text_encoder: str | Path | None = None,
                   label_counts: Sequence[int] = (1, 8, 32, 96), image: Any = None, short_side: int = 800,
                   repeats: int = 1, device: str = "cpu") -> dict[str, Any]:
    """Seconds per ``detect`` call and forward passes for each label count (best of ``repeats``)."""
    import torch

    from cielr_core.perception.detector import load_grounding_dino

    if weights is None:
        weights, text_encoder = default_models()
    if image is None:
        from tests.conftest import load_photo

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
            best = float("inf")
            for _ in range(repeats):
                calls.clear()
                t = time.perf_counter()
                found = detector.detect(image, labels, box_threshold=0.3, text_threshold=0.25)
                best = min(best, time.perf_counter() - t)
            rows.append({"labels": n, "passes": len(calls), "seconds": best, "detections": len(found)})
    finally:
        hook.remove()
    return {"architecture": detector.name, "load_s": load_s, "image": tuple(image.shape[:2]),
            "short_side": short_side, "threads": torch.get_num_threads(), "rows": rows}


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a GroundingDINO .pth/.safetensors or HF folder "
                                          "(default: random-weight SwinT-OGC)")
    parser.add_argument("--text-encoder", help="bert-base-uncased folder (for .pth weights)")
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 8, 32, 96])
    parser.add_argument("--short-side", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    result = bench_detector(args.weights, args.text_encoder, args.labels, short_side=args.short_side,
                            repeats=args.repeats)
    print(format_table(result))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    main()
