"""The work loop: tasks are handed out one sample at a time to workers that load their models once,
and each task's result is delivered exactly once, in the calling process.

A worker factory is a picklable callable (a module-level class or function, or a dataclass
instance of one) that returns a ``Worker``; it runs where the worker lives: in this process, or in
each Ray actor (``cluster``). ``Worker.run`` answers a sample's own problems with a result (a failed
record); an exception from it stops the whole run (an unreachable LLM is not a property of a sample),
after the results delivered so far are written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .memory import MemoryMonitor, process_peak_rss
from .progress import RunProgress

# How often a sample is handed out when its worker dies under it; then it is delivered as ``Lost``.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Task:
    key: str  # the sample's id, unique in the run
    payload: Any  # what the worker needs to run it (picklable)


@dataclass(frozen=True)
class Lost:
    """Delivered in place of a result when every worker that ran the sample died under it."""

    attempts: int
    reason: str


class Worker(Protocol):
    # in this process the loop sets it: the worker tells the progress bar which stage runs
    status: Callable[[str], None] | None

    def run(self, payload: Any) -> Any:
        """One sample; returns its result (a failed one for the sample's own problems)."""

    def info(self) -> dict[str, Any]:
        """What loading cost: ``load_seconds``, ``load_peak_rss_mb``; ``peak_rss_mb`` of the process."""

    def close(self) -> None:
        """Stop what the worker started (its memory sampler); the models go with it."""


class ModelWorker:
    """A ``Worker`` that loads its models once (``loader()``, timed, its memory peak measured) and keeps a
    memory sampler for its life, so each sample's record can carry its peak per stage. Subclasses
    implement ``run``."""

    status: Callable[[str], None] | None = None

    def __init__(self, loader: Callable[[], Any]):
        self.monitor = MemoryMonitor(interval=0.01).__enter__()
        start = time.perf_counter()
        self.monitor.set_stage("model load")
        self.models = loader()
        self.monitor.set_stage(None)
        self.load_seconds = round(time.perf_counter() - start, 3)
        self.load_peak = self.monitor.peaks_mb().get("model load")

    def close(self) -> None:
        self.monitor.__exit__(None, None, None)

    def info(self) -> dict[str, Any]:
        peak = process_peak_rss()
        return {"load_seconds": self.load_seconds, "load_peak_rss_mb": self.load_peak,
                "peak_rss_mb": None if peak is None else round(peak / 2 ** 20, 1)}


WorkerFactory = Callable[[], Worker]
# Called once per task in the calling process: write the result; True when it is a failure.
Deliver = Callable[[Task, Any], bool]


@dataclass
class RunStats:
    ran: int = 0  # tasks delivered
    retried: int = 0  # hand-outs after a worker died
    lost: int = 0  # tasks delivered as Lost
    workers: list[dict[str, Any]] = field(default_factory=list)  # info() of every worker (re)start

    @property
    def load_seconds(self) -> float | None:
        """The longest model load of any worker (the wait before its first sample)."""
        return max((w["load_seconds"] for w in self.workers if w.get("load_seconds") is not None), default=None)

    def peak(self, key: str) -> float | None:
        return max((w[key] for w in self.workers if w.get(key) is not None), default=None)


def run_tasks(tasks: Sequence[Task], factory: WorkerFactory, deliver: Deliver, progress: RunProgress,
              cluster: Any = None, stats: RunStats | None = None) -> RunStats:
    """Run every task and deliver each result once; ``cluster`` (``cluster.ClusterOptions``) runs them on
    Ray actors, else one worker in this process. No worker is made when there is no task. ``stats`` is
    filled as the run goes, so a run that is interrupted still has its figures."""
    stats = stats if stats is not None else RunStats()
    if not tasks:
        return stats
    if cluster is not None:
        from .cluster import run_on_ray

        return run_on_ray(tasks, factory, deliver, progress, cluster, stats)
    progress.status("loading models")
    worker = factory()
    stats.workers.append(worker.info())
    worker.status = progress.status
    try:
        for task in tasks:
            progress.status(f"{task.key}: running")
            failed = deliver(task, worker.run(task.payload))
            stats.ran += 1
            progress.done(failed)
    finally:
        stats.workers[-1] = worker.info()  # the process's peak after the run
        worker.close()
    return stats


def run_until_stopped(tasks: Sequence[Task], factory: WorkerFactory, deliver: Deliver, progress: RunProgress,
                      cluster: Any, stats: RunStats, stops: tuple[type[BaseException], ...]) -> BaseException | None:
    """``run_tasks``, catching what ends a run early so its caller can still write the tables: Ctrl-C
    (returned as a KeyboardInterrupt) and the exceptions in ``stops``. None when every task ran."""
    try:
        run_tasks(tasks, factory, deliver, progress, cluster, stats)
    except KeyboardInterrupt as e:
        return e
    except stops as e:
        return e
    finally:
        progress.close()
    return None


def raise_if_stopped(stopped: BaseException | None, left: str, log: Callable[[str], None]) -> None:
    """After the tables are written: say how far the run got (``left``) and raise what stopped it."""
    if stopped is None:
        return
    log(f"interrupted: {left}" if isinstance(stopped, KeyboardInterrupt) else f"stopped: {stopped}\n{left}")
    raise stopped
