"""The run's files: sample records (one JSON file each, written atomically by ``runs.files``), their
names, and JSON text in which infinities (a bit-exact background's PSNR) are the strings "inf"/"-inf"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..evaluation import json_number
from ..runs.files import safe_name
from .records import RECORD_FORMAT, SampleRecord


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
