"""The ``batch`` subcommand: every line of a JSONL manifest edited and written as a result folder
(see ``cielr_core.batch``), resumable, in this process or on a Ray cluster."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch import OUTPUT_LAYOUT
from ..config import (
    EDIT_OPTIONS,
    LLM_OPTIONS,
    PERCEPTION_OPTIONS,
    Settings,
    find_inpaint_model,
    find_local_llm,
    find_perception_models,
)
from ..errors import InputError
from . import common, run_options

BATCH_EXAMPLES = """\
examples:
  # edits.jsonl, one edit per line (paths relative to the manifest):
  #   {"id": "room-1", "image": "photos/room.jpg", "instruction": "replace the speaker with a floor lamp"}
  #   {"id": "desk-2", "image": "photos/desk.jpg", "instruction": "remove the cup", "plan": "plans/desk.json"}
  python -m cielr_core batch edits.jsonl --out runs/edits --config cielr.toml

  # the same on a Ray cluster, one worker per GPU; run it again to finish what an interruption left
  python -m cielr_core batch edits.jsonl --out runs/edits --config cielr.toml --ray head-node:6379

""" + OUTPUT_LAYOUT + "\n" + run_options.RAY_EPILOG


def add_parser(sub: Any) -> None:
    batch = run_options.add_run_parser(
        sub, "batch", help="edit every line of a JSONL manifest into a folder of results",
        description="Edit every photo of MANIFEST (JSON lines: id, image, instruction, and optionally plan and "
                    "scene, each an object or a JSON file) as 'edit' would, writing one result folder per line. "
                    "Resumable: finished lines are skipped.",
        epilog=BATCH_EXAMPLES, source=("manifest", "MANIFEST", "the JSONL file"),
        resumed_with="manifest and settings")
    batch.add_argument("--retry-failed", action="store_true", help="edit lines that failed before again")
    batch.add_argument("--overwrite", action="store_true", help="delete the results in --out and start again")
    common.add_common(batch, "LLM (needed for lines without a plan)")
    run_options.add_worker_options(batch)


@dataclass(frozen=True)
class BatchLoader:
    """Loads the batch's models where it is called: in this process, or once in each Ray worker."""

    settings: Settings
    inpaint: tuple[Path, Path | None]
    perception: tuple[Path, Path | None, Path] | None  # GroundingDINO, its text encoder, SAM
    debug: bool = False

    def __call__(self) -> Any:
        from ..batch.runner import BatchModels

        loaded = run_options.load_editing_models(self.settings, self.inpaint, self.perception, self.debug)
        loaded.pop("device")
        return BatchModels(**loaded, llm=common.make_llm(self.settings),
                           settings=common.pipeline_settings(self.settings))


def _lines(items: list[Any]) -> str:
    shown = ", ".join(str(i.line) for i in items[:8])
    return f"{len(items)} line(s) ({shown}{' ...' if len(items) > 8 else ''})"


def cmd_batch(args: argparse.Namespace, settings: Settings, reporter: common.Reporter) -> int:
    from ..batch.manifest import read_manifest
    from ..batch.runner import BatchOptions, run_batch

    cluster = run_options.cluster_options(args, settings.models_device)
    items, _ = read_manifest(args.manifest)
    llm = common.make_llm(settings)
    common.check_llm_reachable(llm)
    psettings = common.pipeline_settings(settings)
    unplanned = [i for i in items if i.plan is None]
    if llm is None and unplanned:
        raise InputError(f"{_lines(unplanned)} of the manifest have no plan, so an LLM must write them: give one "
                         "(--llm-url URL or --llm-local PATH, or [llm] in --config), or a plan on each line")
    unseen = [i for i in items if i.scene is None]
    if llm is None and unseen and not settings.perception_labels.strip():
        raise InputError(f"without an LLM, name the objects to look for with --labels, or give a scene on "
                         f"{_lines(unseen)}")
    inpaint = find_inpaint_model(settings)
    paths: dict[str, Any] = {"inpaint": inpaint[0], "inpaint_config": inpaint[1]}
    perception = None
    if unseen or psettings.verifies:  # the detector perceives, and looks at the edits again
        perception = find_perception_models(settings)
        paths.update(grounding_dino=perception[0], text_encoder=perception[1], sam=perception[2])
    if settings.llm_local:
        paths["llm_local"] = find_local_llm(settings)
    options = BatchOptions(manifest=Path(args.manifest), out=Path(args.out), retry_failed=args.retry_failed,
                           overwrite=args.overwrite, progress=not args.quiet)
    fingerprint = run_options.run_fingerprint(settings, [*EDIT_OPTIONS, *PERCEPTION_OPTIONS, *LLM_OPTIONS], paths)
    report = run_batch(options, BatchLoader(settings, inpaint, perception, args.debug), fingerprint,
                       log=reporter.say, cluster=cluster)
    s = report.summary
    reporter.say(f"{s['lines']} lines: {s['ok']} ok, {s['failed']} failed, {len(s['problems'])} manifest "
                 f"problems ({report.ran} run now, {report.skipped} finished before)")
    print(report.out / "summary.md")
    return 0
