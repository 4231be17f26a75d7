"""The on-disk cache of built test models, keyed by their builder's source.

Each set of models lives in ``<cache>/<name>-<key>/``, where the key is a hash of the source that
writes the weights (the builder's files or script text). Changing a builder therefore rebuilds its
set and nothing else; an unchanged builder reuses the files across runs, branches and processes.

Several processes may ask for the same set at once (pytest-xdist workers, two test runs): one builds
it under a file lock, into a temporary folder that is renamed into place only when complete, while
the others wait for the lock and then reuse it. A reader never sees half a set. A build killed
half-way leaves its temporary folder, and the next build of the same key resumes there: a builder
writes each file atomically and skips the files already written.

Sets of other keys (older builders) are removed once no run has used them for ``STALE_HOURS``, so
the cache holds about one copy of each set.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from devkit import COMFYUI, SETUP_HINT, SetupError

STALE_HOURS = 3.0
KEY = re.compile(r"[0-9a-f]{12}")
USED = ".used"  # touched on every use: the age of a set's last use, for pruning


def source_key(*sources: str | Path) -> str:
    """A short hash of the given files' bytes (``Path``) and strings."""
    digest = hashlib.sha256()
    for source in sources:
        data = source.read_bytes() if isinstance(source, Path) else source.encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (released when the process dies, too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_build(root: str | Path, name: str, sources: tuple[str | Path, ...],
                 build: Callable[[Path], None]) -> Path:
    """The folder holding set ``name`` for these builder ``sources``; ``build(folder)`` fills the
    folder the first time (in this or any other process), keeping files a killed build completed."""
    root = Path(root)
    final = root / f"{name}-{source_key(name, *sources)}"
    if not final.is_dir():
        with locked(root / f".{name}.lock"):
            if not final.is_dir():
                tmp = root / f".{final.name}.partial"  # what a killed build wrote: the next one resumes
                for old in root.glob(f".{name}-*.partial"):
                    if old != tmp:  # a partial build of an older builder
                        shutil.rmtree(old, ignore_errors=True)
                tmp.mkdir(parents=True, exist_ok=True)
                build(tmp)
                os.rename(tmp, final)  # atomic: the set appears whole or not at all
    (final / USED).touch()
    prune(root, name, keep=final)
    return final


def prune(root: Path, name: str, keep: Path, stale_hours: float = STALE_HOURS) -> None:
    """Remove the other keys' sets of ``name`` that no run has used for ``stale_hours``."""
    cutoff = time.time() - stale_hours * 3600
    for other in root.glob(f"{name}-*"):
        if other == keep or not other.is_dir() or not KEY.fullmatch(other.name[len(name) + 1:]):
            continue  # not a set of this name (e.g. "sd15-inpainting-..." for "sd15")
        used = other / USED
        try:
            last = used.stat().st_mtime if used.exists() else other.stat().st_mtime
        except FileNotFoundError:
            continue  # another process removed it
        if last < cutoff:
            with locked(root / f".{name}.lock"):
                shutil.rmtree(other, ignore_errors=True)


def run_comfy_script(args: list[str], what: str, timeout: float) -> None:
    """``python ARGS`` in the ComfyUI install (builders that use ComfyUI's own model classes run in a
    subprocess, so the test process never imports ``comfy``)."""
    if not (COMFYUI / "comfy").is_dir():
        raise SetupError(f"ComfyUI is not installed at {COMFYUI}: {SETUP_HINT}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=COMFYUI, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SetupError(f"building {what} failed:\n{proc.stderr[-4000:]}")
