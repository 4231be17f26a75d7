"""The run's files: sample records (one JSON file each, written atomically), their names, and
JSON text in which infinities (a bit-exact background's PSNR) are the strings "inf"/"-inf"."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from ..evaluation import json_number
from .records import RECORD_FORMAT, SampleRecord

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



def jsonable(obj: Any) -> Any:
    """Plain data for ``json.dumps(allow_nan=False)``: models dumped, non-finite floats as strings."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump()
    if isinstance(obj, float):
        return json_number(obj)
    if isinstance(obj, Mapping):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def dump_json(data: Any) -> str:
    return json.dumps(jsonable(data), indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def record_path(out: Path, sample_id: str) -> Path:
    return out / "samples" / f"{safe_name(sample_id)}.json"


def read_record(path: Path, sample_id: str) -> SampleRecord | None:
    """The record if it is complete and belongs to this sample; None otherwise (run it again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or data.get("id") != sample_id:
        return None
    try:
        return SampleRecord.model_validate(data)
    except ValidationError:  # a status other than ok/failed, a damaged field: run it again
        return None


def save_image(path: Path, image: np.ndarray) -> None:
    """An 8-bit image as PNG, written atomically."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)
