"""What every benchmark script shares: where the repository, the data and the model cache are, and
the sampler of peak resident memory over a block (the one the run workers use, ``cielr_core.runs.memory``).

Importing it puts the repository on ``sys.path`` (the scripts run as ``python benchmarks/x.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from cielr_core.runs.memory import MemoryMonitor  # noqa: E402
from devkit import CACHE  # noqa: E402
from devkit import CIEBENCH as DATA  # noqa: E402

MIB = 1 << 20

__all__ = ["CACHE", "DATA", "MIB", "REPO", "MemoryMonitor"]
