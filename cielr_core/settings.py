"""The settings schema: every setting's name, type, default, range and help, and which layers use it.

One ``Setting`` per setting, declared once, as a row of the table ``settings.json`` (data, one row a
line, read here into ``Setting`` records named as the table names them: ``settings.GROW``); the three
layers are built from it, so they agree by construction:

- the library validates its records with it (``EditSettings``, ``SamplerSettings``,
  ``PipelineSettings``, ``VerifySettings``, the LLM clients: ``Setting.check`` / ``problems``);
- the command line (``config.Option``, one per row with a ``cli`` entry: option group, TOML section
  and key, flag, metavar) takes its type, default and help from it, and refuses a value outside the
  range, naming the flag;
- the ComfyUI nodes build their widget inputs from it (``nodes.base.widget``): default, min, max,
  step and tooltip.

``layers`` says who uses a setting: LIBRARY, CLI, NODE. A setting's ``name`` is the library's field
and the node's input name (the command line's TOML key may differ; ``config.py`` maps it). Ranges
are the widest any layer accepts: a value a saved workflow holds stays valid. ``auto`` is a value
outside the range that means "decided at run time" (working_size 0: the model family's size).

This module imports nothing heavy: ``--help`` is built from it without loading torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError

LIBRARY, CLI, NODE = "library", "cli", "node"
ALL_LAYERS = frozenset({LIBRARY, CLI, NODE})


@dataclass(frozen=True)
class Setting:
    name: str  # the library's field and the node's input name
    type: type  # int, float, str, bool or list (of ints)
    default: Any
    help: str
    layers: frozenset[str] = ALL_LAYERS
    min: float | None = None
    max: float | None = None
    step: float | None = None  # the widget's step: how far one click moves it (values need not be multiples)
    round: float | None = None  # a float widget's precision
    auto: Any = None  # a value outside [min, max] that means "decided at run time"
    choices: tuple[str, ...] | None = None
    multiline: bool = False
    # a node seed that ComfyUI's frontend changes after each run (only the image's sampling seed does):
    # False is said explicitly, since the frontend adds the control to any INT input named seed
    control_after_generate: bool | None = None
    # the command line's flag: {"group": subcommands' option group, "section": TOML table, "key": TOML key
    # if not the name, "flag", "path": a file or folder, "metavar"}
    cli: dict | None = field(default=None, compare=False)

    @property
    def widget_min(self) -> float | None:
        """The lowest value a widget lets through: the range's, or ``auto`` when that lies below it."""
        if self.auto is not None and self.min is not None and self.auto < self.min:
            return self.auto
        return self.min

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        if self.auto is not None and value == self.auto:
            return None
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.min is None and self.max is None:
            return None
        low = "-inf" if self.min is None else number(self.min)
        high = "inf" if self.max is None else number(self.max)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            auto = f" (or {self.auto}: auto)" if self.auto is not None else ""
            return f"{self.name} must be between {low} and {high}{auto}, got {value}"
        return None

    def check(self, value: Any) -> Any:
        """``value`` when it is valid; otherwise an InputError saying what the setting accepts."""
        problem = self.problem(value)
        if problem:
            raise InputError(problem)
        return value


def number(value: float) -> str:
    """A bound as people write it: 4096, 0.25, 18446744073709551615."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def problems(record: Any, settings: Iterable[Setting]) -> list[str]:
    """The problems of a record's fields (``record.<setting.name>``) against their settings."""
    found = (s.problem(getattr(record, s.name)) for s in settings)
    return [p for p in found if p]


def record(cls: type, values: Mapping[str, Any]) -> Any:
    """The dataclass ``cls`` from ``values`` by field name (names it has no field for are ignored)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def check_all(record: Any, settings: Iterable[Setting], what: str) -> None:
    """InputError listing every field of ``record`` out of range (``what``: "edit settings", ...)."""
    found = problems(record, settings)
    if found:
        raise InputError(f"{what} out of range:\n" + "\n".join(f"  - {p}" for p in found))


# ------------------------------------------------------------------------------ the table

TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list}
TABLE = Path(__file__).with_name("settings.json")


def _read(path: Path) -> dict[str, Setting]:
    """The settings of a table file, by constant name (``GROW``); a ``"like": "GROW"`` row takes that
    row's value facts (type, default, range...) and says its own help, layers and flag."""
    rows = json.loads(path.read_text(encoding="utf-8"))

    def row(key: str) -> dict:
        found = rows[key]
        if "like" not in found:
            return found
        facts = {k: v for k, v in row(found["like"]).items() if k not in ("help", "layers", "cli")}
        return {**facts, **found}

    out = {}
    for key in rows:
        r = {k: v for k, v in row(key).items() if k != "like"}
        out[key] = Setting(r.pop("name"), TYPES[r.pop("type")], r.pop("default"), r.pop("help"),
                           frozenset(r.pop("layers")), choices=tuple(r.pop("choices")) if "choices" in r else None,
                           **r)
    return out


BY_KEY = _read(TABLE)
ALL = tuple(BY_KEY.values())
globals().update(BY_KEY)  # settings.GROW, settings.STEPS, ...: the names the code reads them by

# two seeds, two ranges: the diffusion sampler takes any 64-bit seed (as ComfyUI's KSampler), LLM servers
# and llama.cpp a signed 32-bit one
SAMPLING_SEED_MAX = BY_KEY["SAMPLING_SEED"].max
LLM_SEED_MAX = BY_KEY["LLM_SEED"].max
EDIT_MODES = BY_KEY["EDIT_MODE"].choices
BOX_FORMATS = BY_KEY["BOX_FORMAT"].choices
