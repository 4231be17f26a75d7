"""The benchmark runner: CIELR (or an oracle) over a dataset, with per-sample records and summary tables.

For each entry of a dataset in the CIEBench or SmartEdit layout (``cielr_core.datasets``), in the
dataset's order: decode the photo and the ground-truth mask, run the method, compute every metric
(``cielr_core.metrics.evaluate_edit``), and write one JSON record per sample into ``OUT/samples/``.
Then the summary tables are written from all records: ``results.csv`` (one row per sample),
``summary.csv`` (metrics, both ways), ``timings.csv`` (per-stage seconds and peak memory),
``summary.json`` (all of it) and ``summary.md`` (the tables for a report).

- **Resumable**: a sample whose record exists is finished and is not run again, so a run that was
  interrupted (Ctrl-C, a killed process, ``--limit``) continues where it stopped and ends with the
  same tables. Records are written atomically (a killed run never leaves half a record). ``run.json``
  keeps the settings of the run; resuming with other settings is refused (the tables would mix two
  configurations). ``retry_failed`` runs failed samples again.
- **Failures are results**: an entry the dataset reader rejects (missing file, mask of the wrong
  size, empty instruction, ...) and a sample the method fails on (no plan, a model error, ...) each
  get a record with the stage and the reason, and are counted in every table. ``metrics.summarise``
  reports each metric both ways: failures dropped (the original protocol) and failures counted.
  Only an unreachable LLM stops the run (it is not a property of a sample, and recording it would
  mark every remaining sample as finished); the records written so far are kept.
- **Oracle mode** uses the ground-truth masks as the plan's regions: a scene of one object per mask
  file, a plan that replaces each with the sample's CLIP target text (or removes it when there is
  none), grow 0. No perception and no LLM run. Every changed pixel then lies inside the
  ground-truth mask, so the strict background PSNR is inf on every sample: the runner's proof that
  editing leaves the background bit-exact.
- **Timings and memory**: per-stage seconds (``PipelineResult.seconds`` plus loading and metrics)
  and the peak resident memory seen during each stage (sampled by a side thread with psutil).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import (
    LoadedSample,
    Problem,
    Sample,
    SampleError,
    detect_layout,
    iter_dataset,
    load_mask,
    load_sample,
)
from .editing import InpaintEngine, execute_plan
from .errors import CIELRError, InputError
from .llm import LLMConnectionError
from .metrics import PROTOCOL_SIZES, Metric, evaluate_edit, json_safe, summarise
from .pipeline import PipelineResult, PipelineSettings, run_pipeline
from .plan import Action, Plan, validate_plan
from .scene import Scene, build_scene, make_object
from .scene.masks import mask_box

RECORD_FORMAT = "cielr-bench-record/1"
RUN_FORMAT = "cielr-bench-run/1"
# Stages in the order they run; "load" decodes the sample, "metrics" evaluates it.
TIME_STAGES = ("load", "labels", "perceive", "scene", "refine", "decompose", "edit", "metrics")
ORACLE = "oracle"
PIPELINE = "pipeline"
DATASET_STAGE = "dataset"
MAX_PROMPT = 200  # Action.prompt's limit
# Metrics in the order the tables list them (others follow in first-seen order).
METRIC_ORDER = tuple(f"{k}_{s}" for s in PROTOCOL_SIZES for k in ("psnr", "ssim", "lpips", "mse", "clip")) + (
    "strict_psnr", "strict_max_diff", "outside_edit_psnr", "outside_edit_max_diff", "iou", "precision", "recall",
    "idcs")


class BenchError(InputError):
    """The benchmark cannot run as asked (the output folder holds another configuration, ...)."""


@dataclass
class BenchOptions:
    dataset: Path
    out: Path
    layout: str | None = None  # "ciebench" or "smartedit"; None: detected
    text_file: str | None = None  # SmartEdit: the instruction file, when the folder holds several
    check: str = "header"  # how much the dataset reader verifies up front (see datasets)
    limit: int | None = None  # the first N entries of the dataset (rejected entries included)
    oracle: bool = False
    retry_failed: bool = False
    overwrite: bool = False  # discard the records in ``out`` first
    save_images: bool = True  # OUT/images/<id>.png (edited) and <id>_mask.png (edited region)
    sizes: tuple[int, ...] = PROTOCOL_SIZES
    progress: bool = True  # a progress bar on stderr

    @property
    def mode(self) -> str:
        return ORACLE if self.oracle else PIPELINE


@dataclass
class BenchModels:
    """What a run needs; oracle runs need only ``engine``."""

    engine: InpaintEngine
    detector: Any = None
    segmenter: Any = None
    llm: Any = None
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    lpips: Any = None  # metrics.LPIPSModel, Unavailable or None (not computed)
    clip: Any = None  # metrics.CLIPScorer, Unavailable or None
    idcs: bool = False  # IDCS with ``llm`` (describer needs vision)
    load_seconds: float = 0.0


ModelLoader = Callable[[], BenchModels]


@dataclass
class BenchReport:
    out: Path
    entries: int  # entries in the run (after --limit)
    ran: int  # samples run in this invocation
    skipped: int  # finished earlier, not run again
    records: list[dict[str, Any]]  # one per entry that has a record, in dataset order
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False


# ------------------------------------------------------------------------------- files

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(sample_id: str) -> str:
    """A file name for a sample id: the id itself when it is plain, else a cleaned form plus a hash."""
    clean = _SAFE.sub("_", sample_id)[:80]
    if clean == sample_id and clean not in ("", ".", ".."):
        return clean
    return f"{clean.strip('.') or 'id'}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def dump_json(data: Any) -> str:
    return json.dumps(json_safe(data), indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def record_path(out: Path, sample_id: str) -> Path:
    return out / "samples" / f"{safe_name(sample_id)}.json"


def read_record(path: Path, sample_id: str) -> dict[str, Any] | None:
    """The record if it is complete and belongs to this sample; None otherwise (run it again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or data.get("id") != sample_id:
        return None
    if data.get("status") not in ("ok", "failed"):
        return None
    return data


# ------------------------------------------------------------------------------- memory

def _rss() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def process_peak_rss() -> int | None:
    """The process's resident-memory high-water mark in bytes (getrusage), None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class MemoryMonitor:
    """Samples the resident memory every ``interval`` seconds in a side thread and keeps the peak
    per stage (the stage is set by the runner). Without psutil it records nothing."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.available = _rss() is not None
        self.stage: str | None = None
        self.peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if self.available:
            self._thread = threading.Thread(target=self._run, name="cielr-bench-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._note()

    def _note(self) -> None:
        rss = _rss() if self.available else None
        if rss is None:
            return
        with self._lock:
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


# ------------------------------------------------------------------------------- progress

class _SimpleBar:
    """A line per sample on stderr, when tqdm is not installed."""

    def __init__(self, total: int, disable: bool):
        self.total, self.n, self.disable = total, 0, disable

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        if not self.disable:
            print(f"[{self.n}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return _SimpleBar(total, not enabled)
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5)


# ------------------------------------------------------------------------------- oracle

def oracle_scene_and_plan(loaded: LoadedSample, threshold: int = 127) -> tuple[Scene, Plan]:
    """A scene of one object per ground-truth mask file and a plan that repaints each inside its mask.

    The prompt is the sample's CLIP target text for that mask (the i-th text for the i-th mask when
    the counts match, else all texts joined); a sample without target text gets a remove action.
    """
    sample = loaded.sample
    h, w = loaded.image.shape[:2]
    if len(sample.mask_paths) == 1:
        masks = [loaded.mask]
    else:
        masks = [load_mask(p, size=(w, h), threshold=threshold) for p in sample.mask_paths]
    per_mask = len(sample.targets) == len(masks)
    objects, actions = [], []
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        text = (sample.targets[i] if per_mask else sample.target_text).strip()[:MAX_PROMPT]
        obj_id = len(objects) + 1
        objects.append(make_object(obj_id, text or "target region", 1.0, mask_box(mask), mask))
        if text:
            actions.append(Action(op="replace", targets=[obj_id], prompt=text))
        else:
            actions.append(Action(op="remove", targets=[obj_id]))
    if not objects:
        raise SampleError(sample.id, "every ground-truth mask is empty: there is no region to edit")
    scene = build_scene(Scene(w, h, objects))
    return scene, validate_plan(Plan(actions=actions), scene)


# ------------------------------------------------------------------------------- one sample

def _usage(llm: Any) -> dict[str, int]:
    u = getattr(llm, "usage", None)
    if u is None:
        return {}
    return {k: int(v) for k, v in dataclasses.asdict(u).items() if v is not None}  # None: not reported


def _save_image(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def _error_text(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _StageTracker:
    """Which stage is running (for failure records, the progress bar and the memory monitor)."""

    def __init__(self, monitor: MemoryMonitor, on_change: Callable[[str], None] | None = None):
        self.monitor = monitor
        self.on_change = on_change
        self.current: str | None = None
        self.last: str | None = None
        self.seconds: dict[str, float] = {}  # the stages' times as seen from here (kept when a stage raises)
        self._start = 0.0

    def __call__(self, stage: str, event: str = "start") -> None:
        if event == "start":
            self.current = self.last = stage
            self._start = time.perf_counter()
            self.monitor.set_stage(stage)
            if self.on_change is not None:
                self.on_change(stage)
        else:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - self._start
            self.current = None
            self.monitor.set_stage(None)


def run_sample(sample: Sample, models: BenchModels, options: BenchOptions, monitor: MemoryMonitor,
               on_stage: Callable[[str], None] | None = None) -> tuple[dict[str, Any], np.ndarray | None,
                                                                        np.ndarray | None]:
    """One sample end to end: (its record, the edited image, the edited-region mask); never raises
    for a problem of the sample (only for an unreachable LLM and for Ctrl-C)."""
    monitor.reset()
    track = _StageTracker(monitor, on_stage)
    seconds: dict[str, float] = {}
    record: dict[str, Any] = {"format": RECORD_FORMAT, "id": sample.id, "mode": options.mode,
                              "sample": sample.to_dict(), "status": "ok", "stage": None, "failure": None}
    usage_before = _usage(models.llm)
    edited = edited_mask = None
    start = time.perf_counter()

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        track(stage)
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - t0
            track(stage, "end")

    try:
        loaded = timed("load", lambda: load_sample(sample))
        if options.oracle:
            scene, plan = timed("scene", lambda: oracle_scene_and_plan(loaded))
            settings = dataclasses.replace(models.settings.edit, grow=0)
            result = PipelineResult(scene=scene, plan=plan)
            verifier = models.settings.verifier(models.detector, models.segmenter, models.llm)
            result.edit = timed("edit", lambda: execute_plan(loaded.image, scene, plan, models.engine, settings,
                                                             verifier=verifier))
        else:
            result = run_pipeline(loaded.image, sample.instruction, detector=models.detector,
                                  segmenter=models.segmenter, llm=models.llm, engine=models.engine,
                                  settings=models.settings, on_stage=track)
            seconds.update(result.seconds)
        edited, edited_mask = result.edit.image, result.edit.mask > 0
        record.update(_describe_result(result))
        describe, score = _idcs_callables(models)
        metrics = timed("metrics", lambda: evaluate_edit(
            loaded.image, edited, loaded.mask, target_text=sample.target_text, edited_mask=edited_mask,
            instruction=sample.instruction, sizes=options.sizes, lpips=models.lpips, clip=models.clip,
            describe=describe, score=score))
        record["metrics"] = {k: m.to_dict() for k, m in metrics.items()}
    except (LLMConnectionError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 (a sample's failure is a result, recorded with its reason)
        stage = track.current or track.last or "load"
        reason = e.reason if isinstance(e, SampleError) else _error_text(e)
        record.update(status="failed", stage=stage, failure=reason, error_type=type(e).__name__)
        for k, v in track.seconds.items():  # the pipeline's own times died with it: the stages as timed here
            seconds.setdefault(k, v)
        record.setdefault("metrics", {})
        if not isinstance(e, CIELRError):  # an unexpected error: keep where it came from
            import traceback

            record["traceback"] = traceback.format_exc(limit=-6)
    seconds["total"] = time.perf_counter() - start
    record["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
    record["peak_rss_mb"] = monitor.peaks_mb()
    used = _usage(models.llm)
    if used:
        record["llm"] = {k: used[k] - usage_before.get(k, 0) for k in used}
    return record, edited, edited_mask


def _describe_result(result: PipelineResult) -> dict[str, Any]:
    out: dict[str, Any] = {"labels": list(result.labels)}
    if result.scene is not None:
        out["objects"] = [{"id": o.id, "label": o.label, "score": round(float(o.score), 4),
                           "area": round(float(o.area), 5)} for o in result.scene.objects]
    if result.refinement is not None:
        out["refinement"] = {"rounds": len(result.refinement.rounds), "stop": result.refinement.stop,
                             "added": result.refinement.added}
    if result.plan is not None:
        out["plan"] = result.plan.model_dump(exclude_none=True)
    if result.edit is not None:
        out["actions"] = [r.line() for r in result.edit.reports]
        # every candidate's verdict and which one was kept (the best-of-N protocol, reproducible)
        out["verdicts"] = [r.to_dict() for r in result.edit.reports]
        out["edited_pixels"] = int(np.count_nonzero(result.edit.mask > 0))
    return out


def _idcs_callables(models: BenchModels):
    if not models.idcs or models.llm is None:
        return None, None
    from functools import partial

    from .metrics import describe_with_vlm, idcs_with_llm

    describe = partial(describe_with_vlm, models.llm) if getattr(models.llm, "supports_images", False) else None
    return describe, partial(idcs_with_llm, models.llm)


def problem_record(problem: Problem, mode: str) -> dict[str, Any]:
    return {"format": RECORD_FORMAT, "id": problem.id, "mode": mode, "status": "failed", "stage": DATASET_STAGE,
            "failure": problem.reason, "error_type": "DatasetProblem", "metrics": {}, "seconds": {},
            "peak_rss_mb": {}}


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


def _run_file(out: Path) -> Path:
    return out / "run.json"


def prepare_output(options: BenchOptions, layout: str, fingerprint: Mapping[str, Any] | None) -> dict[str, Any]:
    """Create the output folder, or check that it holds a run of the same configuration."""
    out = options.out
    run_file = _run_file(out)
    identity = {"dataset": str(Path(options.dataset).resolve()), "layout": layout, "mode": options.mode,
                "sizes": list(options.sizes), "settings": json_safe(dict(fingerprint or {}))}
    if options.overwrite and out.exists():
        import shutil

        for sub in ("samples", "images"):
            shutil.rmtree(out / sub, ignore_errors=True)
        run_file.unlink(missing_ok=True)
    if run_file.is_file():
        try:
            run = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BenchError(f"{run_file} is unreadable ({e}); use another --out folder or --overwrite") from None
        before = run.get("identity", {})
        if before != identity:
            diffs = _differences(before, identity)
            raise BenchError(
                f"{out} holds results of another configuration ({'; '.join(diffs[:6])}). Resuming would mix "
                "two configurations in one table: use another --out folder, or --overwrite to start again.")
        return run
    elif out.exists() and any((out / "samples").glob("*.json")):
        raise BenchError(f"{out} holds sample records but no run.json: use another --out folder or --overwrite")
    run = {"format": RUN_FORMAT, "identity": identity, "sessions": []}
    write_atomic(run_file, dump_json(run))
    return run


def _differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} before, {vb!r} now")
    return out


def run_bench(options: BenchOptions, models: BenchModels | ModelLoader,
              fingerprint: Mapping[str, Any] | None = None,
              log: Callable[[str], None] | None = None) -> BenchReport:
    """Run (or resume) a benchmark; see the module doc. ``models`` may be a loader, called only when
    a sample is left to run. ``fingerprint``: the settings that define the run (checked on resume)."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    options.out = Path(options.out)
    if options.limit is not None and options.limit < 1:
        raise BenchError(f"--limit must be at least 1, got {options.limit}")
    entries, notes, layout = dataset_entries(options)
    run = prepare_output(options, layout, fingerprint)
    session: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "entries": len(entries),
                               "ran": 0, "skipped": 0, "model_load_seconds": None}
    records: dict[str, dict[str, Any]] = {}
    loaded_models: BenchModels | None = models if isinstance(models, BenchModels) else None
    bar = progress_bar(len(entries), options.progress, f"bench {options.mode}")
    counts = {"ok": 0, "failed": 0}
    interrupted = False
    aborted: BaseException | None = None
    try:
        with MemoryMonitor() as monitor:
            for entry in entries:
                if isinstance(entry, Problem):
                    rec = problem_record(entry, options.mode)
                    write_atomic(record_path(options.out, entry.id), dump_json(rec))
                    records[entry.id] = rec
                    counts["failed"] += 1
                    bar.update(1)
                    continue
                path = record_path(options.out, entry.id)
                old = read_record(path, entry.id)
                if old is not None and old.get("stage") != DATASET_STAGE and not (
                        options.retry_failed and old["status"] == "failed"):
                    records[entry.id] = old
                    session["skipped"] += 1
                    counts[old["status"]] += 1
                    bar.update(1)
                    continue
                if loaded_models is None:
                    bar.set_postfix_str("loading models")
                    t0 = time.perf_counter()
                    monitor.set_stage("model load")
                    loaded_models = models()  # type: ignore[operator]
                    monitor.set_stage(None)
                    session["model_load_seconds"] = round(time.perf_counter() - t0, 3)
                    session["model_load_peak_rss_mb"] = monitor.peaks_mb().get("model load")

                def show(stage: str, sid: str = entry.id) -> None:
                    bar.set_postfix_str(f"{sid}: {stage} (ok {counts['ok']}, failed {counts['failed']})")

                rec, edited, edited_mask = run_sample(entry, loaded_models, options, monitor, show)
                if options.save_images and edited is not None:
                    name = safe_name(entry.id)
                    _save_image(options.out / "images" / f"{name}.png", edited)
                    _save_image(options.out / "images" / f"{name}_mask.png", edited_mask.astype(np.uint8) * 255)
                    rec["image"] = f"images/{name}.png"
                write_atomic(path, dump_json(rec))
                records[entry.id] = rec
                session["ran"] += 1
                counts[rec["status"]] += 1
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    except LLMConnectionError as e:
        aborted = e
    finally:
        bar.close()
    ordered = [records[e.id] for e in entries if e.id in records]
    session["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    peak = process_peak_rss()
    session["process_peak_rss_mb"] = None if peak is None else round(peak / 2 ** 20, 1)
    session["interrupted"] = interrupted or aborted is not None
    run.setdefault("sessions", []).append(session)
    write_atomic(_run_file(options.out), dump_json(run))
    summary = summarise_run(ordered, entries, notes, layout, options, run)
    files = write_reports(options.out, ordered, summary)
    report = BenchReport(options.out, len(entries), session["ran"], session["skipped"], ordered, summary, files,
                         interrupted or aborted is not None)
    if aborted is not None:
        log(f"stopped: {aborted}\n{len(ordered)} of {len(entries)} entries have records in {options.out}; "
            "run the same command again to continue.")
        raise aborted
    if interrupted:
        log(f"interrupted: {len(ordered)} of {len(entries)} entries have records in {options.out}; run the same "
            "command again to continue.")
        raise KeyboardInterrupt
    return report


# ------------------------------------------------------------------------------- summary

def _stage_stats(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    stages = list(TIME_STAGES) + ["total"]
    for r in records:
        for k in r.get("seconds", {}):
            if k not in stages:
                stages.append(k)
    for stage in stages:
        values = [float(r["seconds"][stage]) for r in records if stage in r.get("seconds", {})]
        peaks = [float(r["peak_rss_mb"][stage]) for r in records if stage in (r.get("peak_rss_mb") or {})]
        if not values:
            continue
        out[stage] = {"samples": len(values), "mean": statistics.fmean(values), "median": statistics.median(values),
                      "max": max(values), "total": math.fsum(values), "peak_rss_mb": max(peaks) if peaks else None}
    return out


def summarise_run(records: Sequence[Mapping[str, Any]], entries: Sequence[Sample | Problem], notes: Sequence[str],
                  layout: str, options: BenchOptions, run: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the tables show, from the records (in dataset order)."""
    metric_summary = summarise([{"id": r["id"], "metrics": r.get("metrics", {}),
                                 "failure": r.get("failure") if r["status"] == "failed" else None}
                                for r in records])
    metrics = _ordered_metrics(metric_summary["metrics"])
    failures = [{"id": r["id"], "stage": r.get("stage"), "reason": r.get("failure")}
                for r in records if r["status"] == "failed"]
    by_stage: dict[str, int] = {}
    for f in failures:
        by_stage[f["stage"]] = by_stage.get(f["stage"], 0) + 1
    llm: dict[str, int] = {}
    for r in records:
        for k, v in (r.get("llm") or {}).items():
            llm[k] = llm.get(k, 0) + int(v)
    sessions = list(run.get("sessions", []))
    peaks = [s.get("process_peak_rss_mb") for s in sessions if s.get("process_peak_rss_mb") is not None]
    loads = [s["model_load_seconds"] for s in sessions if s.get("model_load_seconds") is not None]
    done = {r["id"] for r in records}
    return {
        "dataset": str(options.dataset), "layout": layout, "mode": options.mode, "sizes": list(options.sizes),
        "entries": len(entries), "records": len(records),
        "not_run": [e.id for e in entries if e.id not in done],
        "complete": len(records) == len(entries),
        "samples": {"total": len(records), "ok": sum(r["status"] == "ok" for r in records),
                    "failed": len(failures), "failed_by_stage": by_stage},
        "metrics": metrics,
        "failures": failures,
        "timings": _stage_stats([r for r in records if r["status"] == "ok"]),
        "timings_all": _stage_stats(records),
        "memory": {"process_peak_rss_mb": max(peaks) if peaks else None,
                   "model_load_peak_rss_mb": max((s.get("model_load_peak_rss_mb") or 0 for s in sessions),
                                                 default=None) or None,
                   "model_load_seconds": loads[-1] if loads else None},
        "llm": llm,
        "verification": verification_summary(records),
        "notes": list(notes),
        "sessions": len(sessions),
    }


def verification_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How often the kept candidate passed, how many candidates ran, which one was kept."""
    from .editing.candidates import SELECTION_RULE

    actions = [a for r in records if r["status"] == "ok" for a in r.get("verdicts", []) if not a.get("skipped")]
    verified = [a for a in actions if a["verdict"]["status"] != "not verified"]
    kept: dict[str, int] = {}
    for a in verified:
        if a.get("kept") is not None:
            kept[str(a["kept"])] = kept.get(str(a["kept"]), 0) + 1
    return {"actions": len(actions), "verified": len(verified),
            "passed": sum(a["verdict"]["status"] == "passed" for a in verified),
            "candidates_sampled": sum(len(a.get("candidates", [])) for a in actions),
            "any_candidate_passed": sum(any(c["verdict"]["status"] == "passed" for c in a.get("candidates", []))
                                        for a in verified),
            "first_candidate_passed": sum(bool(a.get("candidates")) and
                                          a["candidates"][0]["verdict"]["status"] == "passed" for a in verified),
            "kept_candidate": dict(sorted(kept.items(), key=lambda kv: int(kv[0]))), "rule": SELECTION_RULE}


def verification_markdown(v: Mapping[str, Any]) -> list[str]:
    if not v or not v.get("verified"):
        return []
    kept = ", ".join(f"#{k}: {n}" for k, n in v["kept_candidate"].items())
    return ["## Verification", "",
            f"Actions executed: {v['actions']}; verified: {v['verified']}; kept candidate passed: {v['passed']}; "
            f"first candidate passed: {v['first_candidate_passed']}; some candidate passed: "
            f"{v['any_candidate_passed']}; candidates sampled: {v['candidates_sampled']}; kept: {kept or '-'}.", "",
            f"Selection rule: {v['rule']}.", ""]


def _ordered_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    names = [n for n in METRIC_ORDER if n in metrics] + [n for n in metrics if n not in METRIC_ORDER]
    return {n: metrics[n] for n in names}


# ------------------------------------------------------------------------------- tables

def fmt(v: Any) -> str:
    """A number for the Markdown tables (deterministic: the same value always prints the same)."""
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    x = float(v)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4f}"
    return f"{x:.3e}"


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    return str(v)


def _csv(rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return buf.getvalue()


SUMMARY_COLUMNS = ("metric", "total", "ok", "failed", "not_computed", "protocol_n", "protocol_mean",
                   "protocol_median", "protocol_min", "protocol_max", "protocol_n_inf", "protocol_mean_finite",
                   "success_rate", "worst_value", "mean_failures_as_worst")


def summary_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [list(SUMMARY_COLUMNS)]
    for name, m in summary["metrics"].items():
        p, a = m["protocol"], m["all"]
        rows.append([name, a["total"], a["ok"], a["failed"], a["not_computed"], p["n"], p["mean"], p["median"],
                     p["min"], p["max"], p["n_inf"], p["mean_finite"], a["success_rate"], a["worst"],
                     a["mean_failures_as_worst"]])
    return rows


def result_rows(records: Sequence[Mapping[str, Any]], metric_names: Sequence[str]) -> list[list[Any]]:
    """One row per sample: id, status, stage, reason, every metric (value, or its status), then
    the seconds per stage and the peak memory (which differ from run to run)."""
    stages = list(TIME_STAGES) + ["total"]
    rows: list[list[Any]] = [["id", "status", "stage", "failure", *metric_names,
                              *[f"seconds_{s}" for s in stages], "peak_rss_mb"]]
    for r in records:
        cells: list[Any] = [r["id"], r["status"], r.get("stage") or "", r.get("failure") or ""]
        for name in metric_names:
            m = (r.get("metrics") or {}).get(name)
            if m is None:
                cells.append("")
            else:
                metric = Metric.from_dict(m)
                cells.append(metric.value if metric.value is not None else metric.status)
        secs = r.get("seconds") or {}
        cells += [secs.get(s) for s in stages]
        peaks = (r.get("peak_rss_mb") or {}).values()
        cells.append(max(peaks) if peaks else None)
        rows.append(cells)
    return rows


def _mb(v: Any) -> str | None:
    return None if v is None else f"{float(v):.0f}"


def timing_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [["stage", "samples", "mean_s", "median_s", "max_s", "total_s", "peak_rss_mb"]]
    for stage, t in summary["timings"].items():
        rows.append([stage, t["samples"], t["mean"], t["median"], t["max"], t["total"], t["peak_rss_mb"]])
    return rows


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: Sequence[int] = (0,)) -> str:
    """A Markdown table; columns in ``left`` are text (left-aligned), the others numbers."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":--" if i in left else "--:" for i in range(len(header))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _md_cell(c: Any) -> str:
    return fmt(c).replace("|", "\\|").replace("\n", " ")


def metrics_markdown(summary: Mapping[str, Any]) -> str:
    """The metrics table, both ways (deterministic: the same records give the same text)."""
    rows = []
    for name, m in summary["metrics"].items():
        p, a = m["protocol"], m["all"]
        mean = fmt(p["mean"])
        if p["n_inf"]:
            mean += f" ({p['n_inf']} of {p['n']} inf)"
        rows.append([name, a["ok"], a["failed"], a["not_computed"], mean, p["median"],
                     None if a["success_rate"] is None else f"{100 * a['success_rate']:.1f}%",
                     a["mean_failures_as_worst"]])
    return _md_table(["metric", "ok", "failed", "not computed", "mean, failures dropped (protocol)", "median",
                      "success rate", "mean, failures as worst"], rows)


METRICS_NOTE = (
    "*Failures dropped* is the original protocol (mean over the samples where the metric has a value); "
    "*failures as worst* counts every failed sample at the metric's worst value where it has one "
    "(IoU, precision, recall, CLIP 0; IDCS 1). *Not computed* (a model's weights are absent) is "
    "neither. Background metrics (psnr/ssim/lpips/mse) follow the SmartEdit protocol at each size; "
    "strict_* are measured at full resolution outside the ground-truth mask; outside_edit_* outside "
    "the region the method edited. MSE is on the [0, 1] scale.")
TIMES_NOTE = (
    "Seconds per sample over the samples that finished (failed samples are left out of the times); peak "
    "RSS is the largest resident memory of the process seen during the stage.")


def markdown(summary: Mapping[str, Any]) -> str:
    s = summary["samples"]
    out = [f"# CIELR benchmark: {Path(summary['dataset']).name} ({summary['layout']}, {summary['mode']} mode)", ""]
    stages = ", ".join(f"{k} {v}" for k, v in s["failed_by_stage"].items())
    out.append(f"Entries: {summary['entries']}; with a record: {summary['records']}; ok: {s['ok']}; failed: "
               f"{s['failed']}" + (f" ({stages})" if stages else "") + ".")
    if not summary["complete"]:
        out.append(f"**Incomplete**: {len(summary['not_run'])} entries not run yet "
                   f"({', '.join(summary['not_run'][:10])}{' ...' if len(summary['not_run']) > 10 else ''}); "
                   "run the same command again to continue.")
    out += ["", "## Metrics", "", METRICS_NOTE, "", metrics_markdown(summary), ""]
    nc = [(name, reason, count) for name, m in summary["metrics"].items()
          for reason, count in m["reasons"]["not_computed"].items()]
    if nc:
        out += ["### Not computed", "", _md_table(["metric", "reason", "samples"], nc, left=(0, 1)), ""]
    if summary["failures"]:
        rows = [[f["id"], f["stage"], (f["reason"] or "")[:300]] for f in summary["failures"]]
        out += ["## Failures", "", _md_table(["id", "stage", "reason"], rows, left=(0, 1, 2)), ""]
    out += verification_markdown(summary.get("verification") or {})
    out += ["## Time per stage", "", TIMES_NOTE, "",
            _md_table(["stage", "samples", "mean s", "median s", "max s", "total s", "peak RSS MB"],
                      [[*row[:-1], _mb(row[-1])] for row in timing_rows(summary)[1:]]), ""]
    mem = summary["memory"]
    out.append(f"Process peak RSS (high-water mark): {fmt(_mb(mem['process_peak_rss_mb']))} MB; model loading "
               f"(last session): {fmt(mem['model_load_seconds'])} s, peak {fmt(_mb(mem['model_load_peak_rss_mb']))} MB.")
    if summary["llm"]:
        u = summary["llm"]
        out.append(f"LLM: {u.get('calls', 0)} requests, {u.get('prompt_tokens', 0)} prompt and "
                   f"{u.get('completion_tokens', 0)} completion tokens, {u.get('repairs', 0)} repair rounds.")
    if summary["notes"]:
        out += ["", "## Dataset notes", ""] + [f"- {n}" for n in summary["notes"]]
    return "\n".join(out) + "\n"


def write_reports(out: Path, records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> dict[str, Path]:
    files = {"results.csv": out / "results.csv", "summary.csv": out / "summary.csv",
             "timings.csv": out / "timings.csv", "summary.json": out / "summary.json",
             "summary.md": out / "summary.md"}
    write_atomic(files["results.csv"], _csv(result_rows(records, list(summary["metrics"]))))
    write_atomic(files["summary.csv"], _csv(summary_rows(summary)))
    write_atomic(files["timings.csv"], _csv(timing_rows(summary)))
    write_atomic(files["summary.json"], dump_json(summary))
    write_atomic(files["summary.md"], markdown(summary))
    return files


__all__ = [
    "ORACLE",
    "PIPELINE",
    "TIME_STAGES",
    "BenchError",
    "BenchModels",
    "BenchOptions",
    "BenchReport",
    "MemoryMonitor",
    "dataset_entries",
    "markdown",
    "metrics_markdown",
    "oracle_scene_and_plan",
    "read_record",
    "record_path",
    "run_bench",
    "run_sample",
    "safe_name",
    "summarise_run",
    "write_reports",
]
