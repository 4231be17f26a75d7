"""Perception benchmark: SAM cost for 1/16/64 boxes and detection time for 1/8/32 labels.

Runs benchmarks/perception_sam.py and benchmarks/perception_detector.py with their defaults (each also
runs alone, with more options). Full-size architectures (SAM ViT-B, GroundingDINO SwinT-OGC) with random
weights: the cost of a forward pass does not depend on the weights' values. Prints tables; run with
    python benchmarks/perception.py [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perception_detector import main as detector_main  # noqa: E402
from perception_sam import main as sam_main  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    sam_main(["--device", args.device])
    detector_main([])


if __name__ == "__main__":
    main()
