"""Where a many-sample command (``bench``, ``batch``) runs its samples: in this process, or on Ray
workers with ``--ray`` (see ``cielr_core.runs.cluster``)."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from ..errors import InputError

RAY_EPILOG = """\
On a Ray cluster (--ray): each worker is a Ray actor that loads the models once and takes one sample at
a time; this process writes every result, so --out need not be on a shared disk, but the models and
the input files must be at the same paths on every node. A worker that dies has its samples run
again on another (counted as retried); a run started again over the same --out skips what finished.
"""


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workers (Ray)")
    group.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run the samples on Ray: 'auto' joins the cluster in RAY_ADDRESS, else starts Ray on "
                            "this machine (loopback only); ADDRESS joins that cluster (HOST:6379 or "
                            "ray://HOST:10001). Needs Ray: pip install -r requirements-ray.txt")
    group.add_argument("--workers", type=int, metavar="N", help="Ray workers, each loading the models once "
                       "(default: as many as the cluster's GPUs, or CPUs, hold; at most one per sample)")
    group.add_argument("--worker-cpus", type=float, metavar="C", help="CPUs each Ray worker reserves (default 1)")
    group.add_argument("--worker-gpus", type=float, metavar="G", help="GPUs each Ray worker reserves (default: 1 "
                       "when the cluster has GPUs, unless --device cpu; else 0; 0.5 puts two on a GPU)")


def cluster_options(args: argparse.Namespace, device: str) -> Any:
    """``runs.cluster.ClusterOptions`` from the flags, or None (one process) without --ray."""
    if args.ray is None:
        given = [f for f, v in (("--workers", args.workers), ("--worker-cpus", args.worker_cpus),
                                ("--worker-gpus", args.worker_gpus)) if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply with --ray (without it the samples run in this process)")
        return None
    from ..runs.cluster import ClusterOptions, missing_ray_message

    if importlib.util.find_spec("ray") is None:
        raise InputError(missing_ray_message())
    options = ClusterOptions(address=args.ray.strip(), workers=args.workers,
                             cpus=1.0 if args.worker_cpus is None else args.worker_cpus, gpus=args.worker_gpus,
                             use_gpu=device != "cpu", debug=args.debug)
    problems = options.problems()
    if problems:
        raise InputError("; ".join(problems))
    return options
