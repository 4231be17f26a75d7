"""Batch edits: every line of a manifest through the method, each result written as one folder.

``run_batch`` reads the manifest, skips the lines whose folder holds a finished result, hands the
others out to workers (``BatchWorker``: the models loaded once; in this process or on Ray actors)
and writes each line's folder atomically as its result comes back. Then the run's tables: see
``summary``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..edit_report import report_text
from ..editing import InpaintEngine
from ..errors import CIELRError, InputError
from ..images import encode_png, load_image
from ..llm import LLMConnectionError
from ..pipeline import PipelineSettings, StageTimer, edit_stage, plan_stage, scene_stage
from ..plan import parse_plan, plan_to_json
from ..reasoning import trace_text
from ..runs.files import remove_leftovers, safe_name, write_folder_atomic
from ..runs.ledger import RunMismatch, open_run, save_run
from ..runs.pool import Lost, ModelWorker, RunStats, Task, raise_if_stopped, run_until_stopped
from ..runs.progress import RunProgress
from ..scene import render_preview, scene_from_json, scene_to_json
from .manifest import Item, Problem, read_manifest
from .results import RESULT_FILE, LineResult, folder_files, mask_png, read_result
from .summary import RUN_FILES, write_summary

RUN_FORMAT = "cielr-batch-run/1"
WORKER_STAGE = "worker"  # the worker process died under the line on every attempt


class BatchError(RunMismatch):
    """The batch cannot run as asked (the output folder holds another configuration, ...)."""


@dataclass
class BatchModels:
    """What a line needs: the inpainting engine; the detector and segmenter to perceive (and verify);
    the LLM for lines without a plan."""

    engine: InpaintEngine
    detector: Any = None
    segmenter: Any = None
    llm: Any = None
    settings: PipelineSettings = field(default_factory=PipelineSettings)


ModelLoader = Callable[[], BatchModels]


@dataclass
class BatchOptions:
    manifest: Path
    out: Path
    retry_failed: bool = False  # run lines whose result failed again
    overwrite: bool = False  # delete the results in ``out`` first
    progress: bool = True


@dataclass
class BatchReport:
    out: Path
    lines: int  # usable lines plus problems
    ran: int
    skipped: int  # finished earlier
    results: list[LineResult]  # in manifest order, for the lines that have one
    problems: list[Problem]
    summary: dict[str, Any]
    interrupted: bool = False


def _usage(llm: Any) -> dict[str, int]:
    u = getattr(llm, "usage", None)
    return {} if u is None else {k: int(v) for k, v in dataclasses.asdict(u).items() if v is not None}


class BatchWorker(ModelWorker):
    """Loads the models once and edits lines: each gives its result and its folder's files."""

    def run(self, item: Item) -> tuple[LineResult, dict[str, bytes]]:
        """One line end to end; never raises for a problem of the line (only for an unreachable LLM)."""
        m = self.models
        self.monitor.reset()

        def watch(stage: str, event: str) -> None:
            self.monitor.set_stage(stage if event == "start" else None)
            if event == "start" and self.status is not None:
                self.status(f"{item.id}: {stage}")

        timer = StageTimer(watch)
        result = LineResult(id=item.id, line=item.to_dict())
        files: dict[str, bytes] = {}
        found = plan = edit = None
        before, start = _usage(m.llm), time.perf_counter()
        models = {"detector": m.detector, "segmenter": m.segmenter, "llm": m.llm, "settings": m.settings}
        try:
            image = timer.run("load", lambda: load_image(item.image))
            given_plan = parse_plan(item.plan) if item.plan is not None else None
            given_scene = scene_from_json(item.scene) if item.scene is not None else None
            if m.llm is None and given_plan is None:
                raise InputError("the line has no plan and no LLM is configured to write one")
            found = scene_stage(image, item.instruction, scene=given_scene, timer=timer, **models)
            result.labels, result.objects = list(found.labels), len(found.scene.objects)
            files["scene.json"] = (scene_to_json(found.scene) + "\n").encode()  # compact: masks make it large
            files["preview.png"] = encode_png(render_preview(image, found.scene))
            plan = plan_stage(found.scene, item.instruction, m.llm, plan=given_plan, timer=timer)
            files["plan.json"] = (plan_to_json(plan) + "\n").encode()
            edit = edit_stage(image, found.scene, plan, m.engine, timer=timer, **models)
            files["image.png"] = encode_png(edit.image)
            files["mask.png"] = mask_png(edit.mask)
            result.actions = [r.line() for r in edit.reports]
            result.edited_pixels = int((edit.mask > 0).sum())
            if m.settings.verifies:
                files["verdicts.json"] = (json.dumps([r.to_dict() for r in edit.reports], indent=1) + "\n").encode()
        except (LLMConnectionError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 (a line's failure is its result, with the stage and reason)
            result.status, result.stage = "failed", timer.current or timer.last or "load"
            result.failure = " ".join(str(e).split()) or type(e).__name__
            result.error_type = type(e).__name__
            if not isinstance(e, CIELRError):
                result.failure = f"{type(e).__name__}: {result.failure}"
        result.seconds = {k: round(v, 4) for k, v in {**timer.seconds,
                                                       "total": time.perf_counter() - start}.items()}
        result.peak_rss_mb = self.monitor.peaks_mb()
        used = _usage(m.llm)
        if used:
            result.llm = {k: used[k] - before.get(k, 0) for k in used}
        refinement = trace_text(found.refinement) if found is not None else ""
        files["report.txt"] = report_text(item.instruction, found.labels if found else [], refinement,
                                          plan_to_json(plan) if plan is not None else "", edit, timer.text(),
                                          result.llm).encode()
        return result, folder_files(result, files)


def lost_result(item: Item, lost: Lost) -> tuple[LineResult, dict[str, bytes]]:
    result = LineResult(id=item.id, line=item.to_dict(), status="failed", stage=WORKER_STAGE,
                        error_type="WorkerDied", failure=f"the worker process died {lost.attempts} times editing "
                                                         f"this line (last: {lost.reason})")
    return result, folder_files(result, {})


def _given(models: BatchModels) -> BatchModels:
    return models


def result_folder(out: Path, line_id: str) -> Path:
    return out / safe_name(line_id)


def run_batch(options: BatchOptions, models: BatchModels | ModelLoader, fingerprint: Mapping[str, Any] | None = None,
              log: Callable[[str], None] | None = None, cluster: Any = None) -> BatchReport:
    """Run (or resume) a batch; see ``cielr_core.batch``. ``models`` may be a loader, called once per worker
    and only when a line is left to run; with ``cluster`` (``runs.cluster.ClusterOptions``) it must be a
    picklable loader."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out = options.out = Path(options.out)
    if cluster is not None and isinstance(models, BatchModels):
        raise BatchError("a Ray run needs a model loader, which each worker calls once, not loaded models")
    items, problems = read_manifest(options.manifest)
    reserved = [i for i in items if safe_name(i.id) in RUN_FILES]
    problems = sorted(problems + [Problem(i.line, i.id, "the id is the name of one of the run's own files; "
                                                         "choose another") for i in reserved], key=lambda p: p.line)
    items = [i for i in items if i not in reserved]
    identity = {"manifest": str(Path(options.manifest).resolve()), "settings": json.loads(json.dumps(
        dict(fingerprint or {}), default=str))}
    run = open_run(out, identity, RUN_FORMAT, options.overwrite,
                   [p.parent for p in out.glob(f"*/{RESULT_FILE}")] + [out / name for name in RUN_FILES],
                   lambda: any(out.glob(f"*/{RESULT_FILE}")), BatchError)
    remove_leftovers(out)
    session: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "lines": len(items) + len(problems),
                               "ran": 0, "skipped": 0}
    results: dict[str, LineResult] = {}
    progress = RunProgress(len(items), options.progress, "batch")
    tasks = []
    for item in items:
        old = read_result(result_folder(out, item.id), item.id)
        if old is not None and not (options.retry_failed and old.failed):
            results[item.id] = old
            session["skipped"] += 1
            progress.done(old.failed, skipped=True)
        else:
            tasks.append(Task(item.id, item))

    def deliver(task: Task, outcome: Any) -> bool:
        result, content = lost_result(task.payload, outcome) if isinstance(outcome, Lost) else outcome
        write_folder_atomic(result_folder(out, task.key), content)
        results[task.key] = result
        session["ran"] += 1
        return result.failed

    loader = functools.partial(_given, models) if isinstance(models, BatchModels) else models
    stats = RunStats()
    stopped = run_until_stopped(tasks, functools.partial(BatchWorker, loader), deliver, progress, cluster, stats,
                                (LLMConnectionError,))
    ordered = [results[i.id] for i in items if i.id in results]
    session.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S"), interrupted=stopped is not None,
                   model_load_seconds=stats.load_seconds, workers=stats.workers, retried=stats.retried,
                   lost=stats.lost)
    run.setdefault("sessions", []).append(session)
    save_run(out, run)
    summary = write_summary(out, options.manifest, items, problems, ordered, run)
    report = BatchReport(out, len(items) + len(problems), session["ran"], session["skipped"], ordered, problems,
                         summary, stopped is not None)
    raise_if_stopped(stopped, f"{len(ordered)} of {len(items)} lines have results in {out}; run the same command "
                              "again to continue.", log)
    return report
