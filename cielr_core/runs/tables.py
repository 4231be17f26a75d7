"""Tables that read the same every time the same records are summed up: CSV, Markdown, numbers,
and per-stage time statistics."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


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


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return buf.getvalue()


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: Sequence[int] = (0,)) -> str:
    """A Markdown table; columns in ``left`` are text (left-aligned), the others numbers."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":--" if i in left else "--:" for i in range(len(header))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _md_cell(c: Any) -> str:
    return fmt(c).replace("|", "\\|").replace("\n", " ")


def stage_stats(records: Sequence[Any], order: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per stage over ``records`` (each with ``seconds`` and ``peak_rss_mb`` by stage): samples, mean,
    median, max, total seconds and the peak memory. Stages in ``order``, then "total", then others."""
    out: dict[str, dict[str, Any]] = {}
    stages = list(order) + ["total"]
    for r in records:
        for k in r.seconds:
            if k not in stages:
                stages.append(k)
    for stage in stages:
        values = [r.seconds[stage] for r in records if stage in r.seconds]
        peaks = [r.peak_rss_mb[stage] for r in records if stage in r.peak_rss_mb]
        if not values:
            continue
        out[stage] = {"samples": len(values), "mean": statistics.fmean(values),
                      "median": statistics.median(values), "max": max(values), "total": math.fsum(values),
                      "peak_rss_mb": max(peaks) if peaks else None}
    return out


def tally(results: Iterable[Any]) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """What a run's finished items (records with ``id``, ``failed``, ``stage``, ``failure`` and ``llm``)
    add up to: the failures in order, their count per stage, and the LLM counters summed."""
    results = list(results)
    failures = [{"id": r.id, "stage": r.stage, "reason": r.failure} for r in results if r.failed]
    by_stage: dict[str, int] = {}
    for f in failures:
        by_stage[f["stage"]] = by_stage.get(f["stage"], 0) + 1
    llm: dict[str, int] = {}
    for r in results:
        for k, v in (r.llm or {}).items():
            llm[k] = llm.get(k, 0) + int(v)
    return failures, by_stage, llm
