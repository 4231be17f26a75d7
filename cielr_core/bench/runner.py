"""Running a benchmark: one sample end to end (``BenchWorker``, which loads the models once), and the
whole resumable run over a dataset (``run_bench``), in this process or on Ray actors."""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..editing import execute_plan
from ..errors import CIELRError
from ..evaluation import evaluate_edit
from ..images import encode_png
from ..llm import LLMConnectionError
from ..pipeline import PipelineResult, StageTimer, run_pipeline
from ..runs.files import remove_leftovers, safe_name, write_atomic
from ..runs.ledger import open_run, save_run
from ..runs.memory import MemoryMonitor, process_peak_rss
from ..runs.pool import Lost, ModelWorker, RunStats, Task, raise_if_stopped, run_until_stopped
from ..runs.progress import RunProgress
from .datasets import Problem, Sample, SampleError, detect_layout, iter_dataset, load_sample
from .files import dump_json, jsonable, read_record, record_path
from .options import BenchError, BenchModels, BenchOptions, BenchReport, ModelLoader
from .oracle import oracle_scene_and_plan
from .records import (
    DATASET_STAGE,
    RUN_FORMAT,
    WORKER_STAGE,
    ObjectSummary,
    RefinementSummary,
    SampleInfo,
    SampleRecord,
    problem_record,
)
from .report import write_reports
from .summary import summarise_run


def _usage(llm: Any) -> dict[str, int]:
    u = getattr(llm, "usage", None)
    if u is None:
        return {}
    return {k: int(v) for k, v in dataclasses.asdict(u).items() if v is not None}  # None: not reported



def _error_text(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run_sample(sample: Sample, models: BenchModels, options: BenchOptions, monitor: MemoryMonitor,
               on_stage: Callable[[str], None] | None = None) -> tuple[SampleRecord, np.ndarray | None,
                                                                        np.ndarray | None]:
    """One sample end to end: (its record, the edited image, the edited-region mask); never raises
    for a problem of the sample (only for an unreachable LLM and for Ctrl-C)."""
    monitor.reset()

    def watch(stage: str, event: str) -> None:  # the memory monitor and the progress bar follow the stages
        monitor.set_stage(stage if event == "start" else None)
        if event == "start" and on_stage is not None:
            on_stage(stage)

    timer = StageTimer(watch)
    record = SampleRecord(id=sample.id, mode=options.mode, sample=SampleInfo.model_validate(sample.to_dict()))
    usage_before = _usage(models.llm)
    edited = edited_mask = None
    start = time.perf_counter()

    try:
        loaded = timer.run("load", lambda: load_sample(sample))
        if options.oracle:
            scene, plan = timer.run("scene", lambda: oracle_scene_and_plan(loaded))
            settings = dataclasses.replace(models.settings.edit, grow=0)
            result = PipelineResult(scene=scene, plan=plan)
            verifier = models.settings.verifier(models.detector, models.segmenter, models.llm)
            result.edit = timer.run("edit", lambda: execute_plan(loaded.image, scene, plan, models.engine,
                                                             settings, verifier=verifier))
        else:
            result = run_pipeline(loaded.image, sample.instruction, detector=models.detector,
                                  segmenter=models.segmenter, llm=models.llm, engine=models.engine,
                                  settings=models.settings, timer=timer)
        edited, edited_mask = result.edit.image, result.edit.mask > 0
        _describe_result(record, result)
        describe, score = _idcs_callables(models)
        metrics = timer.run("metrics", lambda: evaluate_edit(
            loaded.image, edited, loaded.mask, target_text=sample.target_text, edited_mask=edited_mask,
            instruction=sample.instruction, sizes=options.sizes, lpips=models.lpips, clip=models.clip,
            describe=describe, score=score))
        record.metrics = metrics
    except (LLMConnectionError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 (a sample's failure is a result, recorded with its reason)
        stage = timer.current or timer.last or "load"
        reason = e.reason if isinstance(e, SampleError) else _error_text(e)
        record.status, record.stage, record.failure = "failed", stage, reason
        record.error_type = type(e).__name__
        if not isinstance(e, CIELRError):  # an unexpected error: keep where it came from
            import traceback

            record.traceback = traceback.format_exc(limit=-6)
    seconds = {**timer.seconds, "total": time.perf_counter() - start}
    record.seconds = {k: round(v, 4) for k, v in seconds.items()}
    record.peak_rss_mb = monitor.peaks_mb()
    used = _usage(models.llm)
    if used:
        record.llm = {k: used[k] - usage_before.get(k, 0) for k in used}
    return record, edited, edited_mask


def _describe_result(record: SampleRecord, result: PipelineResult) -> None:
    record.labels = list(result.labels)
    if result.scene is not None:
        record.objects = [ObjectSummary(id=o.id, label=o.label, score=round(float(o.score), 4),
                                        area=round(float(o.area), 5)) for o in result.scene.objects]
    if result.refinement is not None:
        record.refinement = RefinementSummary(rounds=len(result.refinement.rounds),
                                              stop=result.refinement.stop, added=result.refinement.added)
    if result.plan is not None:
        record.plan = result.plan.model_dump(exclude_none=True)
    if result.edit is not None:
        record.actions = [r.line() for r in result.edit.reports]
        # every candidate's verdict and which one was kept (the best-of-N protocol, reproducible)
        record.verdicts = [r.to_dict() for r in result.edit.reports]
        record.edited_pixels = int(np.count_nonzero(result.edit.mask > 0))


def _idcs_callables(models: BenchModels):
    if not models.idcs or models.llm is None:
        return None, None
    from functools import partial

    from ..evaluation import describe_with_vlm, idcs_with_llm

    vision = getattr(models.llm, "supports_images", False)
    describe = partial(describe_with_vlm, models.llm) if vision else None
    return describe, partial(idcs_with_llm, models.llm)


class BenchWorker(ModelWorker):
    """Loads the models once (``loader``) and runs samples: each gives its record and its image files
    (PNG bytes by name under ``images/``), which the run's own process writes."""

    def __init__(self, loader: ModelLoader, options: BenchOptions):
        super().__init__(loader)
        self.options = options

    def run(self, sample: Sample) -> tuple[SampleRecord, dict[str, bytes]]:
        def stage(name: str) -> None:
            if self.status is not None:
                self.status(f"{sample.id}: {name}")

        record, edited, edited_mask = run_sample(sample, self.models, self.options, self.monitor, stage)
        files = {}
        if self.options.save_images and edited is not None:
            name = safe_name(sample.id)
            files[f"{name}.png"] = encode_png(edited)
            files[f"{name}_mask.png"] = encode_png(edited_mask.astype(np.uint8) * 255)
            record.image = f"images/{name}.png"
        return record, files


def _given(models: BenchModels) -> BenchModels:
    return models


# ------------------------------------------------------------------------------- the run

def dataset_entries(options: BenchOptions) -> tuple[list[Sample | Problem], list[str], str]:
    """The run's entries in dataset order (``limit`` applied), the dataset's notes, its layout."""
    layout = options.layout or detect_layout(options.dataset)
    notes: list[str] = []
    entries: list[Sample | Problem] = []
    for item in iter_dataset(options.dataset, layout, options.check, options.text_file, notes):
        if options.limit is not None and len(entries) >= options.limit:
            break
        entries.append(item)
    return entries, notes, layout


def prepare_output(options: BenchOptions, layout: str,
                   fingerprint: Mapping[str, Any] | None) -> dict[str, Any]:
    """Create the output folder, or check that it holds a run of the same configuration."""
    out = options.out
    identity = {"dataset": str(Path(options.dataset).resolve()), "layout": layout, "mode": options.mode,
                "sizes": list(options.sizes), "settings": jsonable(dict(fingerprint or {}))}
    return open_run(out, identity, RUN_FORMAT, options.overwrite, [out / "samples", out / "images"],
                    lambda: any((out / "samples").glob("*.json")), BenchError)


def lost_record(sample: Sample, mode: str, lost: Lost) -> SampleRecord:
    """The record of a sample whose worker process died under it on every attempt."""
    return SampleRecord(id=sample.id, mode=mode, sample=SampleInfo.model_validate(sample.to_dict()),
                        status="failed", stage=WORKER_STAGE, error_type="WorkerDied",
                        failure=f"the worker process died {lost.attempts} times running this sample "
                                f"(last: {lost.reason})")


def run_bench(options: BenchOptions, models: BenchModels | ModelLoader,
              fingerprint: Mapping[str, Any] | None = None,
              log: Callable[[str], None] | None = None, cluster: Any = None) -> BenchReport:
    """Run (or resume) a benchmark; see ``cielr_core.bench``. ``models`` may be a loader, called only when
    a sample is left to run (once per worker). ``fingerprint``: the settings that define the run (checked
    on resume). ``cluster`` (``runs.cluster.ClusterOptions``): run the samples on Ray actors; ``models``
    must then be a picklable loader, which each actor calls once."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    options.out = Path(options.out)
    if options.limit is not None and options.limit < 1:
        raise BenchError(f"--limit must be at least 1, got {options.limit}")
    if cluster is not None and isinstance(models, BenchModels):
        raise BenchError("a Ray run needs a model loader, which each worker calls once, not loaded models")
    entries, notes, layout = dataset_entries(options)
    run = prepare_output(options, layout, fingerprint)
    for folder in ("samples", "images"):
        remove_leftovers(options.out / folder)
    session: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "entries": len(entries),
                               "ran": 0, "skipped": 0, "model_load_seconds": None}
    records: dict[str, SampleRecord] = {}
    progress = RunProgress(len(entries), options.progress, f"bench {options.mode}")
    tasks = []
    for entry in entries:
        if isinstance(entry, Problem):
            rec = problem_record(entry, options.mode)
            write_atomic(record_path(options.out, entry.id), dump_json(rec))
            records[entry.id] = rec
            progress.done(failed=True)
            continue
        old = read_record(record_path(options.out, entry.id), entry.id)
        retry = old is not None and options.retry_failed and old.failed
        if old is not None and old.stage != DATASET_STAGE and not retry:
            records[entry.id] = old
            session["skipped"] += 1
            progress.done(old.failed, skipped=True)
            continue
        tasks.append(Task(entry.id, entry))

    def deliver(task: Task, result: Any) -> bool:
        if isinstance(result, Lost):
            rec, files = lost_record(task.payload, options.mode, result), {}
        else:
            rec, files = result
        for name, data in files.items():  # the images first: the record marks the sample finished
            write_atomic(options.out / "images" / name, data)
        write_atomic(record_path(options.out, task.key), dump_json(rec))
        records[task.key] = rec
        session["ran"] += 1
        return rec.failed

    loader = functools.partial(_given, models) if isinstance(models, BenchModels) else models
    stats = RunStats()
    stopped = run_until_stopped(tasks, functools.partial(BenchWorker, loader, options), deliver, progress, cluster,
                                stats, (LLMConnectionError,))
    ordered = [records[e.id] for e in entries if e.id in records]
    session["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    session.update(_worker_figures(stats))
    session["interrupted"] = stopped is not None
    run.setdefault("sessions", []).append(session)
    save_run(options.out, run)
    summary = summarise_run(ordered, entries, notes, layout, options, run)
    files = write_reports(options.out, ordered, summary)
    report = BenchReport(options.out, len(entries), session["ran"], session["skipped"], ordered, summary,
                         files, stopped is not None)
    raise_if_stopped(stopped, f"{len(ordered)} of {len(entries)} entries have records in {options.out}; run the "
                              "same command again to continue.", log)
    return report


def _worker_figures(stats: RunStats) -> dict[str, Any]:
    """What the session records about its workers: model loads, memory, retries."""
    peaks = [p for p in (process_peak_rss(),) if p is not None]
    here = round(max(peaks) / 2 ** 20, 1) if peaks else None
    workers = stats.peak("peak_rss_mb")
    return {"model_load_seconds": stats.load_seconds, "model_load_peak_rss_mb": stats.peak("load_peak_rss_mb"),
            "process_peak_rss_mb": max((v for v in (here, workers) if v is not None), default=None),
            "workers": jsonable(stats.workers), "retried": stats.retried, "lost": stats.lost}
