"""The account of one edit a person reads (``edit``'s OUT.trace.txt, a batch line's report.txt): what
was asked, which labels were looked for, the refinement rounds, the plan, each action, the verdicts,
the seconds per stage and the LLM's use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def report_text(instruction: str, labels: list[str], refinement: str, plan: str, edit: Any, seconds: str,
                usage: Mapping[str, Any] | None = None) -> str:
    """The human-readable account of one edit: what was asked, seen, planned, done and checked.
    ``edit``: the EditResult (None when the edit did not run); ``usage``: the LLM's use during it."""
    lines = [f"Instruction: {instruction}", f"Labels: {', '.join(labels)}", "", "Refinement:", refinement, "",
             "Plan:", plan, "", "Edit:", (edit.report if edit is not None else "") or "(no action ran)", "",
             "Verdicts:", edit.verdict_table() if edit is not None else "", "", f"Seconds: {seconds}"]
    if usage is not None:
        lines.append(f"LLM: {usage.get('calls', 0)} requests, {usage.get('prompt_tokens', 0)} prompt and "
                     f"{usage.get('completion_tokens', 0)} completion tokens, {usage.get('repairs', 0)} repair rounds")
    return "\n".join(lines) + "\n"
