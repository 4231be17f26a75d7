"""What every benchmark script shares: where the repository, the data and the model cache are, and
peak resident memory over a block.

Importing it puts the repository on ``sys.path`` (the scripts run as ``python benchmarks/x.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from devkit import CACHE  # noqa: E402,F401  (the benchmarks import them from here)
from devkit import CIEBENCH as DATA  # noqa: E402,F401

MIB = 1 << 20


class PeakRSS:
    """Sampled by a thread: torch's allocations are invisible to tracemalloc, and ru_maxrss is a
    process-lifetime high-water mark that cannot be reset between stages.

    Peak RSS of a process (this one by default) while the block runs; ``growth`` over its start."""

    def __init__(self, pid: int | None = None, interval: float = 0.005):
        import psutil

        self._proc, self._interval = psutil.Process(pid), interval

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.base
