"""The ``bench`` subcommand: a benchmark dataset through the method (or the oracle), with per-sample
records and summary tables (see ``cielr_core.bench``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import (
    EDIT_OPTIONS,
    LLM_OPTIONS,
    METRIC_OPTIONS,
    PERCEPTION_OPTIONS,
    Settings,
    add_options,
    find_inpaint_model,
    find_local_llm,
    find_perception_models,
)
from ..errors import InputError
from . import common, run_options

BENCH_EXAMPLES = """\
examples:
  # the CIELR pipeline on CIEBench (data.json layout), 5 samples, resumable
  python -m cielr_core bench data/ciebench --out runs/ciebench --config cielr.toml --limit 5

  # then the rest: finished samples are skipped, the tables cover every sample
  python -m cielr_core bench data/ciebench --out runs/ciebench --config cielr.toml

  # oracle mode: the ground-truth masks as the plan's regions; proves the background stays bit-exact
  python -m cielr_core bench data/ciebench --out runs/oracle --oracle --inpaint ~/models/sd-inpainting

  # the authors' best of 3: three samples per action, the detector's verdict keeps one (recorded per sample)
  python -m cielr_core bench data/ciebench --out runs/best3 --config cielr.toml --candidates 3

  # SmartEdit's reasoning set (X.png, X_mask.jpg, one "instruction CLIP: target" line per image)
  python -m cielr_core bench SmartEdit/6-Reasoning --out runs/smartedit --config cielr.toml

  # on a Ray cluster: one worker per GPU, each loading the models once
  python -m cielr_core bench data/ciebench --out runs/ciebench --config cielr.toml --ray head-node:6379

Writes into --out: samples/<id>.json (one record per entry, failures included, with the stage and the
reason), images/, results.csv, summary.csv (metrics, failures dropped and counted), timings.csv,
summary.json and summary.md. Exit status 0 when the run finished, whatever the samples' results.

""" + run_options.RAY_EPILOG


def add_parser(sub: Any) -> None:
    bench = run_options.add_run_parser(
        sub, "bench", help="run a benchmark dataset and write result tables",
        description="Run CIELR (or the oracle) on every entry of DATASET_DIR (CIEBench layout: data.json; "
                    "SmartEdit reasoning layout: X.png, X_mask.jpg and a text file of 'instruction CLIP: target' "
                    "lines), compute the metrics, and write per-sample records and summary tables. Resumable: "
                    "finished samples are skipped.",
        epilog=BENCH_EXAMPLES, source=("dataset", "DATASET_DIR", "the dataset folder (or its data.json)"),
        resumed_with="settings")
    bench.add_argument("--limit", type=int, metavar="N", help="only the first N entries of the dataset")
    bench.add_argument("--oracle", action="store_true", help="use the ground-truth masks as the plan's regions "
                       "(replace each with the CLIP target text; grow 0); no perception, no LLM")
    bench.add_argument("--layout", choices=("ciebench", "smartedit"), help="dataset layout (default: detected)")
    bench.add_argument("--text-file", metavar="FILE", help="SmartEdit layout: the instruction file, when the "
                       "folder holds several")
    bench.add_argument("--check", choices=("paths", "header", "full"), default="header",
                       help="how much the dataset is verified before the run (default: header)")
    bench.add_argument("--retry-failed", action="store_true", help="run samples that failed before again")
    bench.add_argument("--overwrite", action="store_true", help="discard the records in --out and start again")
    bench.add_argument("--no-images", action="store_true", help="do not save the edited images")
    common.add_common(bench, "LLM")
    add_options(bench, METRIC_OPTIONS, "metrics")
    run_options.add_worker_options(bench)


def bench_fingerprint(settings: Settings, oracle: bool, paths: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a benchmark's results (resuming with others is refused)."""
    options = list(EDIT_OPTIONS) + list(METRIC_OPTIONS)
    if not oracle:
        options += list(PERCEPTION_OPTIONS) + list(LLM_OPTIONS)
    return run_options.run_fingerprint(settings, options, paths, skip=("edit_grow",) if oracle else ())


@dataclass(frozen=True)
class BenchLoader:
    """Loads a benchmark's models where it is called: in this process, or once in each Ray worker (it is
    pickled there, so it holds paths and settings, never models)."""

    settings: Settings
    inpaint: tuple[Path, Path | None]
    perception: tuple[Path, Path | None, Path] | None  # GroundingDINO, its text encoder, SAM
    llm: bool
    debug: bool = False

    def __call__(self) -> Any:
        from ..bench.options import BenchModels
        from ..evaluation import load_clip, load_lpips

        s = self.settings
        loaded = run_options.load_editing_models(s, self.inpaint, self.perception, self.debug)
        device = loaded.pop("device")
        lpips = load_lpips(s.metrics_lpips_backbone or None, s.metrics_lpips_linear or None, s.metrics_lpips_net,
                           device)
        return BenchModels(**loaded, llm=common.make_llm(s) if self.llm else None,
                           settings=common.pipeline_settings(s), lpips=lpips,
                           clip=load_clip(s.metrics_clip or None, device), idcs=s.metrics_idcs)


def cmd_bench(args: argparse.Namespace, settings: Settings, reporter: common.Reporter) -> int:
    from ..bench.options import BenchOptions
    from ..bench.runner import run_bench

    if not settings.metrics_sizes or any(not 11 <= s <= 8192 for s in settings.metrics_sizes):
        raise InputError(f"--sizes must be sizes from 11 to 8192, got {settings.metrics_sizes}")
    cluster = run_options.cluster_options(args, settings.models_device)
    inpaint_path, inpaint_config = find_inpaint_model(settings)
    paths: dict[str, Any] = {"inpaint": inpaint_path, "inpaint_config": inpaint_config}
    perception_paths = None
    psettings = common.pipeline_settings(settings)
    if not args.oracle or psettings.verifies:  # the detector perceives, and looks at the edits again
        perception_paths = find_perception_models(settings)
        paths.update(grounding_dino=perception_paths[0], text_encoder=perception_paths[1],
                     sam=perception_paths[2])
    if not args.oracle:
        llm = common.make_llm(settings)
        common.check_llm_reachable(llm)
        if llm is None:
            raise InputError("the benchmark runs the LLM pipeline: give an LLM (--llm-url URL or --llm-local PATH, "
                             "or [llm] in --config), or use --oracle")
        if settings.llm_local:
            paths["llm_local"] = find_local_llm(settings)
    options = BenchOptions(dataset=Path(args.dataset), out=Path(args.out), layout=args.layout,
                           text_file=args.text_file, check=args.check, limit=args.limit, oracle=args.oracle,
                           retry_failed=args.retry_failed, overwrite=args.overwrite, save_images=not args.no_images,
                           sizes=tuple(settings.metrics_sizes), progress=not args.quiet)
    loader = BenchLoader(settings, (inpaint_path, inpaint_config), perception_paths, llm=not args.oracle,
                         debug=args.debug)
    report = run_bench(options, loader, bench_fingerprint(settings, args.oracle, paths), log=reporter.say,
                       cluster=cluster)
    s = report.summary["samples"]
    reporter.say(f"{report.entries} entries: {s['ok']} ok, {s['failed']} failed ({report.ran} run now, "
                 f"{report.skipped} finished before)")
    print(report.files["summary.md"])
    return 0
