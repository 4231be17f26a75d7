"""``run.json``: what defines a run (its identity: inputs, mode, settings) and its sessions. A run
started again over the same output folder resumes only when the identity is the same; otherwise the
results would mix two configurations."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .files import write_atomic

RUN_FILE = "run.json"


class RunMismatch(InputError):
    """The output folder holds another run, or results without their run.json."""


def dump(data: Any) -> str:
    return json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """What differs between two identities, as "key: old before, new now" lines."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} before, {vb!r} now")
    return out


def open_run(out: Path, identity: Mapping[str, Any], run_format: str, overwrite: bool,
             results: Sequence[Path], has_results: Callable[[], bool],
             error: type[InputError] = RunMismatch) -> dict[str, Any]:
    """The run in ``out``: created, or read back when ``identity`` (plain JSON data) matches.

    ``overwrite`` first deletes ``results`` (folders and files) and run.json. ``has_results`` tells
    whether results are there, which without a run.json means the folder holds something else.
    A mismatch raises ``error``.
    """
    run_file = out / RUN_FILE
    if overwrite and out.exists():
        for path in results:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        run_file.unlink(missing_ok=True)
    if run_file.is_file():
        try:
            run = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise error(f"{run_file} is unreadable ({e}); use another --out folder or --overwrite") from None
        before = run.get("identity", {})
        if before != identity:
            diffs = differences(before, identity)
            raise error(
                f"{out} holds results of another configuration ({'; '.join(diffs[:6])}). Resuming would mix "
                "two configurations in one table: use another --out folder, or --overwrite to start again.")
        return run
    if out.exists() and has_results():
        raise error(f"{out} holds results but no {RUN_FILE}: use another --out folder or --overwrite")
    run = {"format": run_format, "identity": dict(identity), "sessions": []}
    write_atomic(run_file, dump(run))
    return run


def save_run(out: Path, run: Mapping[str, Any]) -> None:
    write_atomic(out / RUN_FILE, dump(run))
