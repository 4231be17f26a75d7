"""What one edit leaves behind: the files (the edited image, the region it may have changed, the scene,
its preview, the plan, the report, the verdicts) and ``result.json``, the typed record that lists
them. The ``edit`` command writes the same files next to its output; a batch line writes all of it
as one folder, at once (``runs.files.write_folder_atomic``); both write the report with
``edit_report.report_text``.

A result folder is finished when its ``result.json`` reads back, belongs to its id, and every file it
lists is there with the size it lists; anything else (a folder a crash or a person left incomplete)
is run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from ..images import encode_png

RESULT_FORMAT = "cielr-batch-result/1"
RESULT_FILE = "result.json"


class LineResult(BaseModel):
    """``result.json``: one manifest line's outcome. A failed line names the stage and the reason."""

    format: str = RESULT_FORMAT
    id: str
    status: Literal["ok", "failed"] = "ok"
    stage: str | None = None
    failure: str | None = None
    error_type: str | None = None
    line: dict[str, Any] = Field(default_factory=dict)  # the manifest line as written, with its number
    labels: list[str] = Field(default_factory=list)
    objects: int | None = None  # in the scene the plan was made on
    actions: list[str] = Field(default_factory=list)  # one line per executed action
    edited_pixels: int | None = None
    seconds: dict[str, float] = Field(default_factory=dict)
    peak_rss_mb: dict[str, float] = Field(default_factory=dict)
    llm: dict[str, int] | None = None  # LLM usage during this line
    files: dict[str, int] = Field(default_factory=dict)  # the other files of the folder, with their sizes

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def mask_png(mask: np.ndarray) -> bytes:
    """The region an edit may have changed, white on black."""
    return encode_png((np.asarray(mask) > 0).astype(np.uint8) * 255)


def folder_files(result: LineResult, files: dict[str, bytes]) -> dict[str, bytes]:
    """The folder's content: the files, and result.json listing them (written in the same rename)."""
    result.files = {name: len(data) for name, data in files.items()}
    return {**files, RESULT_FILE: (result.model_dump_json(indent=1, exclude_none=True) + "\n").encode()}


def read_result(folder: Path, line_id: str) -> LineResult | None:
    """The finished result in ``folder``, or None when it is absent or incomplete (run it again)."""
    try:
        data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        result = LineResult.model_validate(data)
    except (OSError, ValueError, ValidationError):
        return None
    if result.format != RESULT_FORMAT or result.id != line_id:
        return None
    for name, size in result.files.items():
        path = folder / name
        if Path(name).name != name or not path.is_file() or path.stat().st_size != size:
            return None
    return result
