"""The work loop on Ray (``--ray auto|ADDRESS``): one actor per worker, each loading the models once.

- **Where**: ``auto`` joins the cluster in ``RAY_ADDRESS`` (set inside a Ray job) or the one ``ray
  start`` made on this machine, else starts Ray on this machine, listening on loopback only, without
  its dashboard; an address (``HOST:6379``, ``ray://HOST:10001``) joins that cluster. A process that
  already called ``ray.init`` keeps its connection. The library's code travels with the job
  (``py_modules``), so every node needs only the pack's requirements, Ray, the model files and the
  input files at the same paths. Usage statistics are off; the hub is off on the workers too.
- **Placement**: each actor declares its CPUs and GPUs, so Ray places it on a node that has them; by
  default one GPU each when the cluster has GPUs (unless the models run on the CPU), else one CPU,
  and as many actors as the cluster's resources hold (at most one per sample).
- **Hand-out**: per sample, ``DEPTH`` at a time per actor, so a slow sample holds back at most one
  other. Results come back to this process, which alone writes them.
- **Losing nothing**: when an actor's process dies, its samples go back to the front of the queue and
  the next free actor takes them (counted as retried); Ray restarts the actor, which loads the
  models again. A sample whose workers died ``MAX_ATTEMPTS`` times is delivered as ``Lost``. Only
  this process writes, and only on the first result of a sample, so nothing is written twice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dependencies import group_named
from ..errors import CIELRError, InputError
from .pool import MAX_ATTEMPTS, Deliver, Lost, RunStats, Task, WorkerFactory
from .progress import RunProgress

DEPTH = 2  # samples in flight per actor: the next one waits at the actor while this process writes
MAX_RESTARTS = 3  # per actor; each restart loads the models again
RESTART_POLL = 0.5  # seconds between asking a restarting actor whether it is back
PACKAGE = Path(__file__).resolve().parents[1]  # cielr_core, shipped to the workers with the job
# What the workers' environment needs whatever the cluster's: never download, never report usage.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
              "RAY_USAGE_STATS_ENABLED": "0"}


class WorkerError(CIELRError):
    """The workers could not start (models failed to load), or all of them died."""


@dataclass(frozen=True)
class ClusterOptions:
    address: str = "auto"  # "auto" or a cluster address
    workers: int | None = None  # actors; None: as many as the cluster's resources hold
    cpus: float = 1.0  # per actor
    gpus: float | None = None  # per actor; None: 1 when the cluster has GPUs and use_gpu, else 0
    use_gpu: bool = True  # False when the models run on the CPU
    debug: bool = False  # workers' output on this process's stderr

    def problems(self) -> list[str]:
        out = []
        if self.workers is not None and self.workers < 1:
            out.append(f"--workers must be at least 1, got {self.workers}")
        if self.cpus < 0 or (self.gpus is not None and self.gpus < 0):
            out.append("--worker-cpus and --worker-gpus cannot be negative")
        if not self.address.strip():
            out.append("--ray needs 'auto' or a cluster address (HOST:PORT or ray://HOST:PORT)")
        return out


def missing_ray_message() -> str:
    return (f"--ray needs Ray, which is not installed in this Python ({sys.executable}). Install it with\n"
            f"  {group_named('ray').install}\n"
            "(the pack's 'ray' extra; install it on every node of the cluster too), or run without --ray.")


def import_ray(local: bool) -> Any:
    """Ray, with usage statistics off; ``local``: a Ray started here binds and advertises loopback only."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if local and "ray" not in sys.modules:
        # Ray reads it at import: a node that is not part of a cluster uses 127.0.0.1 for everything
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise InputError(missing_ray_message()) from None
    return ray


def job_env() -> dict[str, Any]:
    """The Ray job's runtime environment: this library's code, and the workers' environment variables."""
    return {"env_vars": dict(WORKER_ENV), "py_modules": [str(PACKAGE)]}


def cluster_here() -> str | None:
    """The cluster ``auto`` joins: RAY_ADDRESS, or "auto" when ``ray start`` left its address file on this
    machine (where Ray itself looks for it); None: none, so start one."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    temp = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return "auto" if (Path(temp or "/tmp") / "ray" / "ray_current_cluster").is_file() else None


def connect(options: ClusterOptions) -> tuple[Any, bool]:
    """(ray, whether this call started the connection and must end it)."""
    address = cluster_here() if options.address == "auto" else options.address
    ray = import_ray(local=not address)
    if ray.is_initialized():
        return ray, False
    quiet = {"log_to_driver": options.debug, "logging_level": logging.INFO if options.debug else logging.ERROR,
             "runtime_env": job_env()}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", include_dashboard=False, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address}" if address else "a Ray instance on this machine"
        hint = (" (the address 'ray start' left on this machine; is that cluster still up? 'ray status' says, "
                "'ray stop' clears it)" if address == "auto" else "")
        raise InputError(f"cannot connect to {where}{hint}: {' '.join(str(e).split())[:500]}") from None
    return ray, True


def per_actor(ray: Any, options: ClusterOptions, tasks: int) -> tuple[int, float, float]:
    """(actors, CPUs and GPUs each) from the options and the cluster's resources."""
    have = ray.cluster_resources()
    cpus, gpus_have, cpus_have = options.cpus, have.get("GPU", 0.0), have.get("CPU", 0.0)
    gpus = options.gpus if options.gpus is not None else (1.0 if options.use_gpu and gpus_have >= 1 else 0.0)
    if gpus > gpus_have:
        raise InputError(f"each worker needs {gpus:g} GPU(s) but the Ray cluster has {gpus_have:g}: lower "
                         "--worker-gpus (0 runs on the CPU) or add GPU nodes")
    if cpus > cpus_have:
        raise InputError(f"each worker needs {cpus:g} CPU(s) but the Ray cluster has {cpus_have:g}: lower "
                         "--worker-cpus")
    fits = int(gpus_have // gpus) if gpus else int(cpus_have // cpus) if cpus else len(tasks)
    count = options.workers or fits
    return max(1, min(count, tasks)), cpus, gpus


class RayWorker:
    """A Ray worker: builds its ``Worker`` (loads the models) once, then runs samples."""

    def __init__(self, factory: WorkerFactory):
        self.worker, self.error = None, None
        try:
            self.worker = factory()
        except Exception as e:  # noqa: BLE001 (reported by ready(), where the driver raises it)
            self.error = f"{type(e).__name__}: {' '.join(str(e).split())}"

    def ready(self) -> tuple[dict[str, Any] | None, str | None]:
        import ray

        if self.worker is None:
            return None, self.error
        return {**self.worker.info(), "pid": os.getpid(), "node": ray.util.get_node_ip_address()}, None

    def run(self, payload: Any) -> Any:
        return self.worker.run(payload)


def _cause(error: BaseException) -> BaseException:
    """The exception a worker raised, out of Ray's wrapper (it keeps the original's type)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def run_on_ray(tasks: Sequence[Task], factory: WorkerFactory, deliver: Deliver, progress: RunProgress,
               options: ClusterOptions, stats: RunStats) -> RunStats:
    ray, started = connect(options)
    from ray.exceptions import RayActorError, RayTaskError

    unavailable = getattr(ray.exceptions, "ActorUnavailableError", ())  # a restarting actor (newer Rays)
    # what a sample's worker dying looks like: killed, out of memory (Ray's own monitor), its node lost
    deaths = tuple(getattr(ray.exceptions, name) for name in ("RayActorError", "WorkerCrashedError",
                                                              "OutOfMemoryError", "NodeDiedError", "ObjectLostError")
                   if hasattr(ray.exceptions, name))

    actors: list[Any] = []
    try:
        count, cpus, gpus = per_actor(ray, options, len(tasks))
        remote = ray.remote(RayWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=MAX_RESTARTS,
                                            max_task_retries=0, max_concurrency=1)
        actors = [remote.remote(factory) for _ in range(count)]
        queue, attempts = deque(tasks), {t.key: 0 for t in tasks}
        running: dict[Any, tuple[int, Task]] = {}  # object ref -> (actor, task)
        starting = {actors[i].ready.remote(): i for i in range(count)}  # ready() refs of (re)starting actors
        restarting: dict[int, float] = {}  # actor -> when to ask again whether it is back
        ready: set[int] = set()
        load = {i: 0 for i in range(count)}
        last_death = ""

        def show() -> None:
            waiting = len(starting) + len(restarting)
            progress.status(f"workers {len(ready)}/{count} ready" + (f", {waiting} (re)starting" if waiting else ""))

        def hand_out() -> None:
            for i in sorted(ready, key=lambda i: load[i]):
                while queue and load[i] < DEPTH:
                    task = queue.popleft()
                    running[actors[i].run.remote(task.payload)] = (i, task)
                    load[i] += 1

        def died(i: int, error: BaseException) -> None:
            nonlocal last_death
            last_death = " ".join(str(error).split())[:300]
            if i in ready:  # the first of its samples to fail: ask until it is back (or gone for good)
                ready.discard(i)
                restarting[i] = time.monotonic()

        show()
        while queue or running:
            for i, when in list(restarting.items()):
                if when <= time.monotonic():
                    del restarting[i]
                    starting[actors[i].ready.remote()] = i
            if not ready and not starting and not restarting:
                raise WorkerError(f"every Ray worker died; the last one: {last_death}. The results written so "
                                  "far are kept: run the same command again to continue.")
            refs = list(running) + list(starting)
            if not refs:  # only restarting actors: wait for them
                time.sleep(RESTART_POLL)
                continue
            done, _ = ray.wait(refs, num_returns=1, timeout=RESTART_POLL)
            if not done:
                continue
            ref = done[0]
            if ref in starting:
                i = starting.pop(ref)
                try:
                    info, error = ray.get(ref)
                except unavailable:  # restarting: ask again in a moment
                    restarting[i] = time.monotonic() + RESTART_POLL
                    continue
                except RayActorError as e:  # restarts used up: the actor is gone
                    last_death = " ".join(str(e).split())[:300]
                    show()
                    continue
                except deaths as e:  # killed while loading (out of memory): it restarts, or says it is gone
                    last_death = " ".join(str(e).split())[:300]
                    restarting[i] = time.monotonic() + RESTART_POLL
                    continue
                if error is not None:
                    raise WorkerError(f"a Ray worker could not load the models: {error}")
                stats.workers.append(info)
                ready.add(i)
                show()
                hand_out()
                continue
            i, task = running.pop(ref)
            load[i] -= 1
            try:
                result = ray.get(ref)
            except RayTaskError as e:
                raise _cause(e) from None
            except deaths as e:  # the worker process died (killed, out of memory, node lost)
                died(i, e)
                attempts[task.key] += 1
                if attempts[task.key] >= MAX_ATTEMPTS:
                    stats.lost += 1
                    stats.ran += 1
                    progress.done(deliver(task, Lost(attempts[task.key], last_death)))
                else:
                    stats.retried += 1
                    progress.retry()
                    queue.appendleft(task)
                show()
                hand_out()
                continue
            stats.ran += 1
            progress.done(deliver(task, result))
            hand_out()
        stats.workers = _final_infos(ray, actors, ready, stats.workers)
        return stats
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 (already gone)
                pass
        if started:
            ray.shutdown()


def _final_infos(ray: Any, actors: list[Any], ready: set[int], infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each live worker's figures at the end (its peak memory over the run), else what it said at start."""
    refs = [actors[i].ready.remote() for i in sorted(ready)]
    deadline = time.monotonic() + 10
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=max(0.0, deadline - time.monotonic()))
    final = {}
    for ref in done:
        try:
            info, _ = ray.get(ref)
        except Exception:  # noqa: BLE001 (a worker that died at the very end keeps its start figures)
            continue
        final[info["pid"]] = info
    return [final.get(w.get("pid"), w) for w in infos]
