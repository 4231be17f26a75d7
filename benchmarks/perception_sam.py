"""SAM segmenter speed and memory: full-size ViT-B (random weights time like real ones).

    python benchmarks/perception_sam.py [photo] [--device cpu] [--boxes 1,16,64] [--many 900]

For each box count: ``cold`` is one segment() call with the embedding cache cleared (encoder +
decoding, what a first Perceive pays), ``decode`` the same call again with the embedding cached
(what a refinement round pays). Memory is the peak resident set size (RSS, sampled every 2 ms by
psutil in a side thread) during the call minus the RSS just before it; ``extra`` subtracts the
returned masks themselves (N x H x W bool, 1 MiB each at 1024 x 1024).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import CACHE, DATA, MIB, MemoryMonitor  # (importing it puts the repository on sys.path)


def load_photo_1024(photo: str | Path | np.ndarray | None = None) -> np.ndarray:
    """A real photo resized to 1024 x 1024 RGB."""
    from PIL import Image

    if isinstance(photo, np.ndarray):
        im = Image.fromarray(photo).convert("RGB")
    else:
        im = Image.open(photo or DATA / "0" / "0.png").convert("RGB")
    return np.asarray(im.resize((1024, 1024), Image.BICUBIC))


def vit_b_segmenter(device: str = "cpu", chunk_size: int | None = None):
    """The random-weight ``sam_vit_b_01ec64.pth`` of the test-model cache (built on first use)."""
    from cielr_core.perception.segmenter import load_sam
    from devkit.sam_models import full_sam_vit_b

    return load_sam(full_sam_vit_b(CACHE / "test-models"), device=device, chunk_size=chunk_size)


def random_boxes(n: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy0 = rng.uniform(0, [w * 0.8, h * 0.8], size=(n, 2))
    wh = rng.uniform(16, [w * 0.4, h * 0.4], size=(n, 2))
    return np.concatenate([xy0, xy0 + wh], axis=1).astype(np.float32)


def _timed(seg, image: np.ndarray, boxes: np.ndarray) -> tuple[float, int, np.ndarray]:
    with MemoryMonitor() as mem:
        t = time.perf_counter()
        masks = seg.segment(image, boxes)
        dt = time.perf_counter() - t
    return dt, mem.growth, masks


def bench_sam(photo_path_or_array: str | Path | np.ndarray | None = None,
              boxes_counts: tuple[int, ...] = (1, 16, 64), device: str = "cpu",
              many: int | None = 900, segmenter=None) -> list[dict]:
    """One row per box count: cold and decode-only seconds, peak RSS growth (MiB)."""
    seg = segmenter or vit_b_segmenter(device)
    image = load_photo_1024(photo_path_or_array)
    h, w = image.shape[:2]
    seg.segment(image[::-1].copy(), random_boxes(2, w, h))  # warm-up: kernels, allocator, threads
    rows = []
    for n in boxes_counts:
        boxes = random_boxes(n, w, h)
        seg.clear_cache()
        cold_s, cold_mem, masks = _timed(seg, image, boxes)
        decode_s, decode_mem, _ = _timed(seg, image, boxes)
        rows.append(_row(n, cold_s, decode_s, cold_mem, decode_mem, masks.nbytes))
        del masks
    if many:
        boxes = random_boxes(many, w, h)
        seg.segment(image, boxes[:1])  # the embedding is cached: this row is decoding only
        decode_s, decode_mem, masks = _timed(seg, image, boxes)
        rows.append(_row(many, None, decode_s, None, decode_mem, masks.nbytes))
        del masks
    return rows


def _row(n: int, cold_s: float | None, decode_s: float, cold_mem: int | None, decode_mem: int,
         out_bytes: int) -> dict:
    return {
        "boxes": n,
        "cold_s": cold_s,
        "decode_s": decode_s,
        "decode_ms_per_box": 1000 * decode_s / n,
        "cold_peak_rss_mib": None if cold_mem is None else cold_mem / MIB,
        "decode_peak_rss_mib": decode_mem / MIB,
        "masks_mib": out_bytes / MIB,
        "decode_extra_mib": (decode_mem - out_bytes) / MIB,
    }


def format_table(rows: list[dict]) -> str:
    head = f"{'boxes':>6} {'cold s':>8} {'x 1 box':>8} {'decode s':>9} {'ms/box':>7} " \
           f"{'cold RSS+':>10} {'dec RSS+':>9} {'masks':>7} {'extra':>7}"
    base = next((r["cold_s"] for r in rows if r["boxes"] == 1 and r["cold_s"]), None)
    lines = [head, "-" * len(head)]
    for r in rows:
        cold = f"{r['cold_s']:8.2f}" if r["cold_s"] is not None else f"{'-':>8}"
        ratio = f"{r['cold_s'] / base:8.2f}" if base and r["cold_s"] is not None else f"{'-':>8}"
        cmem = f"{r['cold_peak_rss_mib']:9.0f}M" if r["cold_peak_rss_mib"] is not None else f"{'-':>10}"
        lines.append(f"{r['boxes']:>6} {cold} {ratio} {r['decode_s']:9.3f} {r['decode_ms_per_box']:7.1f} "
                     f"{cmem} {r['decode_peak_rss_mib']:8.0f}M {r['masks_mib']:6.0f}M "
                     f"{r['decode_extra_mib']:6.0f}M")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photo", nargs="?", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--boxes", default="1,16,64")
    p.add_argument("--many", type=int, default=900, help="one decode-only run with this many boxes (0: skip)")
    p.add_argument("--chunk", type=int, default=None, help="boxes per decoder call")
    a = p.parse_args(argv)
    import torch

    seg = vit_b_segmenter(a.device, a.chunk)
    print(f"SAM {seg.architecture.name} (random weights), device {seg.device}, torch threads "
          f"{torch.get_num_threads()}, chunk {seg.chunk_size}, image 1024x1024")
    rows = bench_sam(a.photo, tuple(int(n) for n in a.boxes.split(",")), a.device, a.many, seg)
    print(format_table(rows))
    print("cold = encoder + decode, cache cleared; decode = same call, embedding cached. "
          "RSS+ = peak RSS (psutil, 2 ms sampling) minus RSS before the call; "
          "masks = the returned N x 1024 x 1024 bool array; extra = decode RSS+ minus masks.")


if __name__ == "__main__":
    main()
