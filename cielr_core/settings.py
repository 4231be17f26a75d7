"""The settings schema: every setting's name, type, default, range and help, and which layers use it.

The settings are declared once, as data, in ``settings.toml`` beside this module: one table per
setting, named by its constant (``[GROW]``), whose header comment says what each key means. This module
reads them into ``Setting`` records when it is imported (``settings.GROW``; ``ALL`` in the order
declared, which is the command line's option order). The three layers are built from them, so they agree
by construction:

- the library validates its records with them (``EditSettings``, ``SamplerSettings``,
  ``PipelineSettings``, ``VerifySettings``, the LLM clients: ``Setting.check`` / ``problems``);
- the command line (``config.Option``, one per setting with a ``cli`` entry: option group, TOML section
  and key, flag, metavar) takes its type, default and help from them, and refuses a value outside the
  range, naming the flag;
- the ComfyUI nodes build their widget inputs from them (``nodes.base.widget``): default, min, max,
  step and tooltip.

``layers`` says who uses a setting: LIBRARY, CLI, NODE. A setting's ``name`` is the library's field
and the node's input name (the command line's TOML key may differ; ``config.py`` maps it). Ranges
are the widest any layer accepts: a value a saved workflow holds stays valid. ``auto`` is a value
outside the range that means "decided at run time" (working_size 0: the model family's size). A table
with ``like = "GROW"`` starts from another setting's value facts (type, default, range) and has its own
help, layers and flag; ``cli.path = true`` makes a file or folder only the command line takes.

The table is data rather than code because it is one: sixty rows of the same fields, whose help texts
are prose. A malformed table stops the import with its name; tests/test_settings.py checks the rest.

This module imports nothing heavy: ``--help`` is built from it without loading torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError, MissingDependencyError

# the pack's one TOML reader (config files use it too)
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (this machine runs 3.11)
    try:
        import tomli as tomllib
    except ImportError:  # a core requirement on 3.10, so only a partial install gets here
        raise MissingDependencyError("tomli", "reading TOML (the settings schema, config files) on Python 3.10") \
            from None

LIBRARY, CLI, NODE = "library", "cli", "node"
ALL_LAYERS = frozenset({LIBRARY, CLI, NODE})
CLI_ONLY = frozenset({CLI})


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


# ------------------------------------------------------------------------------ the declarations

SCHEMA_FILE = Path(__file__).with_name("settings.toml")
_TYPES = {t.__name__: t for t in (int, float, str, bool, list)}
_KEYS = {f.name for f in fields(Setting)} | {"like"}
# what ``like`` takes from its base: the value facts, not the help, layers or flag
_VALUE_FACTS = tuple(f.name for f in fields(Setting) if f.name not in ("help", "layers", "cli"))


def declare(constant: str, row: dict[str, Any], declared: Mapping[str, Setting]) -> Setting:
    """One table of settings.toml as a Setting; ValueError naming the table when it is malformed."""
    where = f"{SCHEMA_FILE.name} [{constant}]"
    row = dict(row)
    unknown = set(row) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    facts: dict[str, Any] = {}
    if "like" in row:
        base = declared.get(row.pop("like"))
        if base is None:
            raise ValueError(f"{where}: like must name a setting declared above it")
        facts = {k: getattr(base, k) for k in _VALUE_FACTS}
        facts["layers"] = base.layers
    cli = row.get("cli")
    if cli and cli.get("path"):  # a file or folder only the command line takes
        facts.update(type=str, default="", layers=CLI_ONLY)
    facts.update(row)
    if isinstance(facts.get("type"), str):
        if facts["type"] not in _TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(_TYPES)}, got {facts['type']!r}")
        facts["type"] = _TYPES[facts["type"]]
    facts["layers"] = frozenset(facts.get("layers", ALL_LAYERS))
    if not facts["layers"] or not facts["layers"] <= ALL_LAYERS:
        raise ValueError(f"{where}: layers must be some of {sorted(ALL_LAYERS)}, got {sorted(facts['layers'])}")
    if facts.get("choices") is not None:
        facts["choices"] = tuple(facts["choices"])
    if facts.get("type") is float:  # TOML writes 1 for 1.0; the records hold floats
        facts.update({k: float(facts[k]) for k in ("default", "min", "max", "step", "round")
                      if facts.get(k) is not None})
    try:
        return Setting(**facts)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from None


def _read_schema() -> dict[str, Setting]:
    with SCHEMA_FILE.open("rb") as f:
        rows = tomllib.load(f)
    declared: dict[str, Setting] = {}
    for constant, row in rows.items():
        declared[constant] = declare(constant, row, declared)
    return declared


BY_CONSTANT = _read_schema()
ALL = tuple(BY_CONSTANT.values())  # in the order declared (the command line's option order)


def __getattr__(name: str) -> Setting:
    """``settings.GROW``: the setting declared as ``[GROW]`` in settings.toml."""
    try:
        return BY_CONSTANT[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *BY_CONSTANT])


# two seeds, two ranges: the diffusion sampler takes any 64-bit seed (as ComfyUI's KSampler), LLM servers
# and llama.cpp a signed 32-bit one
SAMPLING_SEED_MAX = BY_CONSTANT["SAMPLING_SEED"].max
LLM_SEED_MAX = BY_CONSTANT["LLM_SEED"].max
EDIT_MODES = BY_CONSTANT["EDIT_MODE"].choices
BOX_FORMATS = BY_CONSTANT["BOX_FORMAT"].choices
