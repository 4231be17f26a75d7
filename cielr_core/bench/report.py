"""The tables: results.csv, summary.csv, timings.csv, summary.json and summary.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..runs.files import write_atomic
from ..runs.tables import csv_text, fmt, md_table
from .files import dump_json
from .records import TIME_STAGES, SampleRecord

SUMMARY_COLUMNS = ("metric", "total", "ok", "failed", "not_computed", "protocol_n", "protocol_mean",
                   "protocol_median", "protocol_min", "protocol_max", "protocol_n_inf",
                   "protocol_mean_finite", "success_rate", "worst_value", "mean_failures_as_worst")


def summary_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [list(SUMMARY_COLUMNS)]
    for name, m in summary["metrics"].items():
        p, a = m["protocol"], m["all"]
        rows.append([name, a["total"], a["ok"], a["failed"], a["not_computed"], p["n"], p["mean"],
                     p["median"], p["min"], p["max"], p["n_inf"], p["mean_finite"], a["success_rate"],
                     a["worst"], a["mean_failures_as_worst"]])
    return rows


def result_rows(records: Sequence[SampleRecord], metric_names: Sequence[str]) -> list[list[Any]]:
    """One row per sample: id, status, stage, reason, every metric (value, or its status), then
    the seconds per stage and the peak memory (which differ from run to run)."""
    stages = list(TIME_STAGES) + ["total"]
    rows: list[list[Any]] = [["id", "status", "stage", "failure", *metric_names,
                              *[f"seconds_{s}" for s in stages], "peak_rss_mb"]]
    for r in records:
        cells: list[Any] = [r.id, r.status, r.stage or "", r.failure or ""]
        for name in metric_names:
            m = r.metrics.get(name)
            if m is None:
                cells.append("")
            else:
                cells.append(m.value if m.value is not None else m.status)
        cells += [r.seconds.get(s) for s in stages]
        peaks = r.peak_rss_mb.values()
        cells.append(max(peaks) if peaks else None)
        rows.append(cells)
    return rows


def verification_markdown(v: Mapping[str, Any]) -> list[str]:
    if not v or not v.get("verified"):
        return []
    kept = ", ".join(f"#{k}: {n}" for k, n in v["kept_candidate"].items())
    counts = (f"Actions executed: {v['actions']}; verified: {v['verified']}; kept candidate passed: "
              f"{v['passed']}; first candidate passed: {v['first_candidate_passed']}; some candidate passed: "
              f"{v['any_candidate_passed']}; candidates sampled: {v['candidates_sampled']}; "
              f"kept: {kept or '-'}.")
    return ["## Verification", "", counts, "", f"Selection rule: {v['rule']}.", ""]


def _mb(v: Any) -> str | None:
    return None if v is None else f"{float(v):.0f}"


def timing_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [["stage", "samples", "mean_s", "median_s", "max_s", "total_s", "peak_rss_mb"]]
    for stage, t in summary["timings"].items():
        rows.append([stage, t["samples"], t["mean"], t["median"], t["max"], t["total"], t["peak_rss_mb"]])
    return rows


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
    return md_table(["metric", "ok", "failed", "not computed", "mean, failures dropped (protocol)", "median",
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
    name = Path(summary["dataset"]).name
    out = [f"# CIELR benchmark: {name} ({summary['layout']}, {summary['mode']} mode)", ""]
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
        out += ["### Not computed", "", md_table(["metric", "reason", "samples"], nc, left=(0, 1)), ""]
    if summary["failures"]:
        rows = [[f["id"], f["stage"], (f["reason"] or "")[:300]] for f in summary["failures"]]
        out += ["## Failures", "", md_table(["id", "stage", "reason"], rows, left=(0, 1, 2)), ""]
    out += verification_markdown(summary.get("verification") or {})
    out += ["## Time per stage", "", TIMES_NOTE, "",
            md_table(["stage", "samples", "mean s", "median s", "max s", "total s", "peak RSS MB"],
                      [[*row[:-1], _mb(row[-1])] for row in timing_rows(summary)[1:]]), ""]
    mem = summary["memory"]
    out.append(f"Process peak RSS (high-water mark): {fmt(_mb(mem['process_peak_rss_mb']))} MB; "
               f"model loading (last session): {fmt(mem['model_load_seconds'])} s, "
               f"peak {fmt(_mb(mem['model_load_peak_rss_mb']))} MB.")
    if summary["llm"]:
        u = summary["llm"]
        out.append(f"LLM: {u.get('calls', 0)} requests, {u.get('prompt_tokens', 0)} prompt and "
                   f"{u.get('completion_tokens', 0)} completion tokens, {u.get('repairs', 0)} repair rounds.")
    if summary["notes"]:
        out += ["", "## Dataset notes", ""] + [f"- {n}" for n in summary["notes"]]
    return "\n".join(out) + "\n"


def write_reports(out: Path, records: Sequence[SampleRecord], summary: Mapping[str, Any]) -> dict[str, Path]:
    files = {"results.csv": out / "results.csv", "summary.csv": out / "summary.csv",
             "timings.csv": out / "timings.csv", "summary.json": out / "summary.json",
             "summary.md": out / "summary.md"}
    write_atomic(files["results.csv"], csv_text(result_rows(records, list(summary["metrics"]))))
    write_atomic(files["summary.csv"], csv_text(summary_rows(summary)))
    write_atomic(files["timings.csv"], csv_text(timing_rows(summary)))
    write_atomic(files["summary.json"], dump_json(summary))
    write_atomic(files["summary.md"], markdown(summary))
    return files
