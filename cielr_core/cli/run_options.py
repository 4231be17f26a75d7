"""What the many-sample commands (``bench``, ``batch``) share: where the samples run (this process, or
Ray workers with ``--ray``; see ``cielr_core.runs.cluster``), and the settings that define a run,
which a resumed run must share."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import Option, Settings, resolve_device
from ..errors import InputError
from . import common

# Where the files and the server are, and how long to wait, do not change the answers: a llama.cpp server
# restarted on another port must not stop a resume.
NOT_RESULTS = {"models_inpaint", "models_inpaint_config", "models_grounding_dino", "models_text_encoder",
               "models_sam", "llm_local", "llm_base_url", "llm_timeout", "llm_max_retries", "llm_api_key_env"}
# Options added after runs were made: at their default they are left out, so such a run resumes.
NEWER = ("edit_candidates", "edit_retries", "edit_verify", "edit_judge")


def run_fingerprint(settings: Settings, options: Iterable[Option], paths: Mapping[str, Any],
                    skip: Iterable[str] = ()) -> dict[str, Any]:
    """The settings that decide a run's results (resuming with others is refused), and the resolved
    model files in ``paths``."""
    options = list(options)
    skipped = NOT_RESULTS | set(skip)
    out = {o.name: getattr(settings, o.name) for o in options if o.name not in skipped}
    for name in NEWER:
        if out.get(name) == next((o.default for o in options if o.name == name), object()):
            out.pop(name, None)
    out["models_device"] = settings.models_device
    out.update({k: str(Path(v).resolve()) if v is not None else None for k, v in paths.items()})
    return out

RAY_EPILOG = """\
On a Ray cluster (--ray): each worker is a Ray actor that loads the models once and takes one sample at
a time; this process writes every result, so --out need not be on a shared disk, but the models and
the input files must be at the same paths on every node. A worker that dies has its samples run
again on another (counted as retried); a run started again over the same --out skips what finished.
"""


def add_run_parser(sub: Any, name: str, *, help: str, description: str, epilog: str, source: tuple[str, str, str],
                   resumed_with: str) -> argparse.ArgumentParser:
    """A many-sample command's parser with what every such command reads and writes: its input ``source``
    (dest, metavar, help) and the output folder --out, resumed when it holds a run of the same
    ``resumed_with``. The subcommand adds its own options, then ``add_worker_options``."""
    parser = sub.add_parser(name, help=help, description=description, epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    dest, metavar, source_help = source
    parser.add_argument(dest, metavar=metavar, help=source_help)
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help=f"output folder (resumed when it holds a run of the same {resumed_with})")
    return parser


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workers (Ray)")
    group.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run the samples on Ray: 'auto' joins the cluster in RAY_ADDRESS or the one 'ray start' "
                            "made on this machine, else starts Ray here (loopback only); ADDRESS joins that cluster "
                            "(HOST:6379 or ray://HOST:10001). Needs Ray: pip install -r requirements-ray.txt")
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


def load_editing_models(settings: Settings, inpaint: tuple[Path, Path | None],
                        perception: tuple[Path, Path | None, Path] | None, debug: bool) -> dict[str, Any]:
    """What every worker of a run loads once, where it runs: the device, the inpainting engine and (with
    ``perception``: GroundingDINO, its text encoder, SAM) the detector and segmenter."""
    common.quiet_libraries(debug)
    device = resolve_device(settings.models_device)
    detector = segmenter = None
    if perception is not None:
        detector, segmenter = common.load_perception(perception, device)
    return {"device": device, "engine": common.load_engine(*inpaint, settings, device), "detector": detector,
            "segmenter": segmenter}
