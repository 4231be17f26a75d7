"""What every benchmark script shares: where the repository, the data and the model cache are, and
the sampler of peak resident memory over a block (the benchmark runner's, ``cielr_core.bench.memory``).

Importing it puts the repository on ``sys.path`` (the scripts run as ``python benchmarks/x.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("CIELR_DATA", REPO / "tests" / "data")) / "ciebench-dev"
CACHE = Path(os.environ.get("CIELR_CACHE", Path.home() / ".cache" / "cielr"))
MIB = 1 << 20

from cielr_core.bench.memory import MemoryMonitor  # (after the repository is on sys.path)

__all__ = ["CACHE", "DATA", "MIB", "REPO", "MemoryMonitor"]
