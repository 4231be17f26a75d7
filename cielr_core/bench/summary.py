"""The numbers the tables show, from the records: metrics both ways, failures, times, memory, LLM use
and how the best-of-N verification went."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..evaluation import PROTOCOL_SIZES, summarise
from ..runs.tables import stage_stats, tally
from .datasets import Problem, Sample
from .options import BenchOptions
from .records import TIME_STAGES, SampleRecord

# Metrics in the order the tables list them (others follow in first-seen order).
METRIC_ORDER = tuple(f"{k}_{s}" for s in PROTOCOL_SIZES for k in ("psnr", "ssim", "lpips", "mse", "clip")) + (
    "strict_psnr", "strict_max_diff", "outside_edit_psnr", "outside_edit_max_diff", "iou", "precision",
    "recall", "idcs")


def summarise_run(records: Sequence[SampleRecord], entries: Sequence[Sample | Problem], notes: Sequence[str],
                  layout: str, options: BenchOptions, run: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the tables show, from the records (in dataset order)."""
    metrics = _ordered_metrics(summarise(r.result() for r in records)["metrics"])
    failures, by_stage, llm = tally(records)
    sessions = list(run.get("sessions", []))
    peaks = [s.get("process_peak_rss_mb") for s in sessions if s.get("process_peak_rss_mb") is not None]
    loads = [s["model_load_seconds"] for s in sessions if s.get("model_load_seconds") is not None]
    done = {r.id for r in records}
    return {
        "dataset": str(options.dataset), "layout": layout, "mode": options.mode, "sizes": list(options.sizes),
        "entries": len(entries), "records": len(records),
        "not_run": [e.id for e in entries if e.id not in done],
        "complete": len(records) == len(entries),
        "samples": {"total": len(records), "ok": sum(not r.failed for r in records),
                    "failed": len(failures), "failed_by_stage": by_stage},
        "metrics": metrics,
        "failures": failures,
        "timings": stage_stats([r for r in records if not r.failed], TIME_STAGES),
        "timings_all": stage_stats(records, TIME_STAGES),
        "memory": {"process_peak_rss_mb": max(peaks) if peaks else None,
                   "model_load_peak_rss_mb": max((s.get("model_load_peak_rss_mb") or 0 for s in sessions),
                                                 default=None) or None,
                   "model_load_seconds": loads[-1] if loads else None},
        "llm": llm,
        "verification": verification_summary(records),
        "notes": list(notes),
        "sessions": len(sessions),
    }


def verification_summary(records: Sequence[SampleRecord]) -> dict[str, Any]:
    """How often the kept candidate passed, how many candidates ran, which one was kept."""
    from ..editing.candidates import SELECTION_RULE

    actions = [a for r in records if not r.failed for a in r.verdicts or [] if not a.get("skipped")]
    verified = [a for a in actions if a["verdict"]["status"] != "not verified"]
    kept: dict[str, int] = {}
    for a in verified:
        if a.get("kept") is not None:
            kept[str(a["kept"])] = kept.get(str(a["kept"]), 0) + 1
    return {"actions": len(actions), "verified": len(verified),
            "passed": sum(_passed(a) for a in verified),
            "candidates_sampled": sum(len(a.get("candidates", [])) for a in actions),
            "any_candidate_passed": sum(any(_passed(c) for c in a.get("candidates", [])) for a in verified),
            "first_candidate_passed": sum(bool(a.get("candidates")) and _passed(a["candidates"][0])
                                          for a in verified),
            "kept_candidate": dict(sorted(kept.items(), key=lambda kv: int(kv[0]))), "rule": SELECTION_RULE}


def _passed(checked: Mapping[str, Any]) -> bool:
    return checked["verdict"]["status"] == "passed"


def _ordered_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    names = [n for n in METRIC_ORDER if n in metrics] + [n for n in metrics if n not in METRIC_ORDER]
    return {n: metrics[n] for n in names}
