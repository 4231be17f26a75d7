"""The batch run's tables, from the line results (in manifest order): ``results.csv`` (one row per
line), ``summary.json`` (all of it) and ``summary.md`` (counts, problems, failures, time per stage).
The same results always give the same text, whichever worker made them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..runs.files import write_atomic
from ..runs.ledger import RUN_FILE
from ..runs.tables import csv_text, fmt, md_table, stage_stats, tally
from .manifest import Item, Problem
from .results import LineResult

STAGES = ("load", "labels", "perceive", "scene", "refine", "decompose", "edit")
RUN_FILES = (RUN_FILE, "results.csv", "summary.json", "summary.md")


def summarise(manifest: Path, items: Sequence[Item], problems: Sequence[Problem], results: Sequence[LineResult],
              run: Mapping[str, Any]) -> dict[str, Any]:
    failures, by_stage, llm = tally(results)
    done = {r.id for r in results}
    return {"manifest": str(manifest), "lines": len(items) + len(problems), "results": len(results),
            "ok": sum(not r.failed for r in results), "failed": len(failures), "failed_by_stage": by_stage,
            "problems": [{"line": p.line, "id": p.id, "reason": p.reason} for p in problems],
            "not_run": [i.id for i in items if i.id not in done], "complete": len(results) == len(items),
            "failures": failures, "timings": stage_stats([r for r in results if not r.failed], STAGES),
            "llm": llm, "sessions": len(run.get("sessions", []))}


def result_rows(results: Sequence[LineResult]) -> list[list[Any]]:
    """One row per line: the outcome, then the seconds per stage and the peak memory (which vary)."""
    stages = list(STAGES) + ["total"]
    rows: list[list[Any]] = [["id", "line", "status", "stage", "failure", "objects", "actions", "edited_pixels",
                              *[f"seconds_{s}" for s in stages], "peak_rss_mb"]]
    for r in results:
        peaks = r.peak_rss_mb.values()
        rows.append([r.id, r.line.get("line"), r.status, r.stage or "", r.failure or "", r.objects, len(r.actions),
                     r.edited_pixels, *[r.seconds.get(s) for s in stages], max(peaks) if peaks else None])
    return rows


def markdown(summary: Mapping[str, Any]) -> str:
    s = summary
    stages = ", ".join(f"{k} {v}" for k, v in s["failed_by_stage"].items())
    out = [f"# CIELR batch: {Path(s['manifest']).name}", "",
           f"Lines: {s['lines']}; with a result: {s['results']}; ok: {s['ok']}; failed: {s['failed']}"
           + (f" ({stages})" if stages else "") + f"; manifest problems: {len(s['problems'])}."]
    if not s["complete"]:
        out.append(f"**Incomplete**: {len(s['not_run'])} lines not run yet; run the same command again to "
                   "continue.")
    if s["problems"]:
        rows = [[p["line"], p["id"] or "", p["reason"][:300]] for p in s["problems"]]
        out += ["", "## Manifest problems (not run)", "", md_table(["line", "id", "reason"], rows, left=(1, 2))]
    if s["failures"]:
        rows = [[f["id"], f["stage"], (f["reason"] or "")[:300]] for f in s["failures"]]
        out += ["", "## Failures", "", md_table(["id", "stage", "reason"], rows, left=(0, 1, 2))]
    rows = [[stage, t["samples"], t["mean"], t["median"], t["max"], t["total"]] for stage, t in s["timings"].items()]
    out += ["", "## Time per stage", "", "Seconds per line over the lines that finished.", "",
            md_table(["stage", "lines", "mean s", "median s", "max s", "total s"], rows)]
    if s["llm"]:
        u = s["llm"]
        out += ["", f"LLM: {u.get('calls', 0)} requests, {u.get('prompt_tokens', 0)} prompt and "
                    f"{u.get('completion_tokens', 0)} completion tokens, {u.get('repairs', 0)} repair rounds."]
    return "\n".join(out) + "\n"


def write_summary(out: Path, manifest: Path, items: Sequence[Item], problems: Sequence[Problem],
                  results: Sequence[LineResult], run: Mapping[str, Any]) -> dict[str, Any]:
    summary = summarise(manifest, items, problems, results, run)
    write_atomic(out / "results.csv", csv_text(result_rows(results)))
    write_atomic(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False, default=fmt) + "\n")
    write_atomic(out / "summary.md", markdown(summary))
    return summary
