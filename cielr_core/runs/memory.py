"""Resident memory: a sampler thread for the peak over a block (per stage too), and the process's
high-water mark.

Sampled by a thread because torch's allocations are invisible to tracemalloc, and ru_maxrss is a
process-lifetime high-water mark that cannot be reset between stages. The benchmark scripts use
the same sampler (``benchmarks/common.py``), and every run worker keeps one for its life.
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def _process(pid: int | None) -> Any:
    try:
        import psutil
    except ImportError:
        if pid is not None:
            raise  # another process cannot be measured without psutil
        return None
    return psutil.Process(pid)


def process_peak_rss() -> int | None:
    """The process's resident-memory high-water mark in bytes (getrusage), None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class MemoryMonitor:
    """Samples the resident memory of a process (this one by default) every ``interval`` seconds in
    a side thread while the block runs: ``base`` (at the start), ``peak`` and ``growth`` in bytes,
    and the peak per stage (the stage is set by the caller). Without psutil it records nothing
    (``available`` is False, the figures stay 0)."""

    def __init__(self, pid: int | None = None, interval: float = 0.005):
        self.interval = interval
        self._proc = _process(pid)
        self.available = self._proc is not None
        self.base = self.peak = 0
        self.stage: str | None = None
        self.peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if self.available:
            self.base = self.peak = self._rss()
            self._thread = threading.Thread(target=self._run, name="cielr-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._note()

    @property
    def growth(self) -> int:
        return self.peak - self.base

    def _rss(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._note()

    def _note(self) -> None:
        if not self.available:
            return
        rss = self._rss()
        with self._lock:
            self.peak = max(self.peak, rss)
            if self.stage is not None and rss > self.peaks.get(self.stage, 0):
                self.peaks[self.stage] = rss

    def set_stage(self, stage: str | None) -> None:
        self._note()  # the end of the stage before
        with self._lock:
            self.stage = stage
        self._note()  # a short stage gets at least one reading

    def reset(self) -> None:
        with self._lock:
            self.peaks = {}

    def peaks_mb(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v / 2 ** 20, 1) for k, v in self.peaks.items()}
