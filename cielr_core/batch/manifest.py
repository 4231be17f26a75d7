"""The batch manifest: a JSONL file, one edit per line, read into typed lines.

Each line is a JSON object::

    {"id": "room-1", "image": "photos/room.jpg", "instruction": "replace the speaker with a floor lamp",
     "plan": {...} or "plans/room-1.json", "scene": {...} or "scenes/room-1.json"}

``id`` names the line's result folder (default: the line number, 1-based; give ids when the manifest
may change between runs, since a resumed run finds results by id). ``image`` is a path; ``plan``
(what ``edit --plan`` reads) and ``scene`` (what ``scene`` writes) are optional, each an object or a
path to a JSON file. Paths are relative to the manifest's folder. Blank lines are skipped; any other
key is refused, so a misspelt key is not silently ignored.

A line that cannot be used (not JSON, a missing or unknown field, an id used twice, a missing image,
an unreadable plan or scene file) is a ``Problem`` naming the line and why; the other lines still
run. Only a manifest that cannot be read at all raises InputError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InputError

MAX_ID = 200


class ManifestLine(BaseModel):
    """One line as written in the manifest."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    image: str = Field(min_length=1)
    instruction: str = Field(min_length=1)
    plan: dict[str, Any] | list[Any] | str | None = None
    scene: dict[str, Any] | str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _number_ids_are_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("instruction")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the instruction is empty")
        return value.strip()


@dataclass(frozen=True)
class Item:
    """A usable line, resolved: what a worker needs to run it (picklable, files not read yet except
    the plan and scene, which are small and checked here)."""

    id: str
    line: int  # 1-based line number in the manifest
    image: Path
    instruction: str
    plan: str | None = None  # JSON text
    scene: str | None = None  # JSON text
    given: dict[str, Any] | None = None  # the line as written, for the result

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, **(self.given or {})}


@dataclass(frozen=True)
class Problem:
    line: int
    id: str | None
    reason: str


def _json_part(value: Any, base: Path, what: str) -> str | None:
    """An inline object as JSON text, or the text of the file a path names."""
    if value is None:
        return None
    if not isinstance(value, str):
        return json.dumps(value)
    path = base / value
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {value}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what} file {value} cannot be read ({e})") from None


def _reason(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"]) or "line"
        msg = "unknown key (expected id, image, instruction, plan, scene)" if err["type"] == "extra_forbidden" \
            else err["msg"]
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def read_manifest(path: str | Path) -> tuple[list[Item], list[Problem]]:
    """The usable lines in file order, and a Problem for each line that is not."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"the manifest {path} cannot be read ({e})") from None
    base = path.parent
    items: list[Item] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            problems.append(Problem(n, None, f"not a JSON object ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(n, None, f"not a JSON object but a {type(data).__name__}"))
            continue
        try:
            given = ManifestLine.model_validate(data)
        except ValidationError as e:
            problems.append(Problem(n, str(data.get("id")) if data.get("id") is not None else None, _reason(e)))
            continue
        sid = given.id if given.id is not None else str(n)
        if sid in seen:
            problems.append(Problem(n, sid, f"the id is already used on line {seen[sid]}"))
            continue
        seen[sid] = n
        image = base / given.image
        try:
            if not image.is_file():
                raise InputError(f"image not found: {given.image}")
            item = Item(sid, n, image, given.instruction, _json_part(given.plan, base, "plan"),
                        _json_part(given.scene, base, "scene"), data)
        except InputError as e:
            problems.append(Problem(n, sid, str(e)))
            continue
        items.append(item)
    if not items and not problems:
        raise InputError(f"the manifest {path} holds no line: write one JSON object per line, e.g. "
                         '{"id": "a", "image": "a.jpg", "instruction": "remove the cup"}')
    return items, problems
