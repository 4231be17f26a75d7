"""Output that is whole or absent: a file or a folder is written under a temporary name and renamed
into place, so a reader (a resumed run) sees the old state or the new one, never a part.

A temporary name starts with "." and holds ".tmp-": ``remove_leftovers`` deletes those that an
interrupted writer left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
TMP_MARK = ".tmp-"


def safe_name(sample_id: str) -> str:
    """A file name for a sample id: the id itself when it is plain, else a cleaned form plus a hash."""
    clean = _SAFE.sub("_", sample_id)[:80]
    if clean == sample_id and clean not in ("", ".", "..") and not clean.startswith("."):
        return clean
    return f"{clean.strip('.') or 'id'}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _write(path: Path, data: str | bytes) -> None:
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a file (text as UTF-8) so that readers see the old content or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        _write(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_folder_atomic(folder: Path, files: Mapping[str, str | bytes]) -> None:
    """Create ``folder`` holding exactly ``files`` (name -> content), replacing any folder of that name.

    The files are written into a temporary folder beside it, which is then renamed. A folder that was
    there before is first renamed aside and deleted after, so at no moment does ``folder`` hold a mix.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(folder)
    tmp.mkdir()
    try:
        for name, data in files.items():
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"a result file name must be a plain name, got {name!r}")
            _write(tmp / name, data)
        _sync_folder(tmp)
        old = None
        if folder.exists():
            old = _temporary(folder)
            os.replace(folder, old)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _sync_folder(folder.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(parent: Path) -> list[Path]:
    """Delete what interrupted writers left in ``parent`` (temporary files and folders); returns them."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    found = [p for p in parent.iterdir() if p.name.startswith(".") and TMP_MARK in p.name]
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found
