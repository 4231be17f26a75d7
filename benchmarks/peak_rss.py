"""Peak resident memory over a block, for the benchmarks.

Sampled by a thread: torch's allocations are invisible to tracemalloc, and ru_maxrss is a
process-lifetime high-water mark that cannot be reset between stages.
"""

from __future__ import annotations

import threading
import time


class PeakRSS:
    """Peak RSS of a process (this one by default) while the block runs; ``growth`` over its start."""

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
