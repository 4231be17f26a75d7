"""Settings for the command line and the benchmark runner: one table of options, read from a TOML
file and overridden by flags.

Every option has a section and key in the TOML file and a command-line flag; a flag given on the
command line wins over the file, the file wins over the default. Unknown sections or keys and
values of the wrong type are errors that name the file, the key and what was expected (a typo is
never silently ignored). Paths in the file are relative to the file's folder.

Example (every key is optional)::

    [models]
    dir = "/path/to/ComfyUI/models"          # searched like ComfyUI: grounding-dino/, sams/, ...
    grounding_dino = "groundingdino_swint_ogc.pth"
    text_encoder = "bert-base-uncased"
    sam = "sam_vit_b_01ec64.pth"
    inpaint = "/models/sd-inpainting"        # a diffusers folder, or one .safetensors with inpaint_config
    device = "cpu"

    [llm]
    base_url = "http://127.0.0.1:8080/v1"    # or local = "SmolLM2-135M-Instruct.Q4_1.gguf"
    model = "smollm2"
    api_key_env = ""                         # the NAME of the variable holding the key, never the key

    [perception]
    box_threshold = 0.3

    [edit]
    steps = 20
    working_size = 512

    [metrics]
    clip = "/models/clip-vit-large-patch14"

TOML is read with ``settings.tomllib``: ``tomllib`` (Python 3.11+) or the ``tomli`` package on Python 3.10.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import settings as S
from .errors import InputError, ModelNotFoundError
from .model_folders import find_in_folders, subfolders
from .perception import sources
from .settings import Setting, tomllib


@dataclass(frozen=True)
class Option:
    """A command-line flag and TOML key for a setting of the schema (``cielr_core.settings``), which
    holds its type, default, range and help."""

    section: str
    setting: Setting
    key: str = ""  # the TOML key; default the setting's name
    flag: str = ""  # the command-line flag; default --<key with dashes>
    path: bool = False  # a file or folder: relative paths in the config file are relative to the file
    metavar: str | None = None

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", self.setting.name)

    @property
    def type(self) -> type:
        return self.setting.type

    @property
    def default(self) -> Any:
        return self.setting.default

    @property
    def help(self) -> str:
        return self.setting.help

    @property
    def name(self) -> str:
        """The attribute name in ``Settings`` and on the argparse namespace: section_key."""
        return f"{self.section}_{self.key}"

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.key.replace("_", "-")


def _options(group: str) -> tuple[Option, ...]:
    """The options of one group (which subcommands take them), in the table's order."""
    return tuple(Option(s.cli["section"], s, s.cli.get("key", ""), s.cli.get("flag", ""), s.cli.get("path", False),
                        s.cli.get("metavar")) for s in S.ALL if s.cli and s.cli["group"] == group)


# Groups of options, by which subcommand uses them.
MODEL_OPTIONS = _options("models")
PERCEPTION_OPTIONS = _options("perception")
LLM_OPTIONS = _options("llm")
EDIT_OPTIONS = _options("edit")
METRIC_OPTIONS = _options("metrics")
ALL_OPTIONS = MODEL_OPTIONS + PERCEPTION_OPTIONS + LLM_OPTIONS + EDIT_OPTIONS + METRIC_OPTIONS
BY_SECTION: dict[str, dict[str, Option]] = {}
for _o in ALL_OPTIONS:
    BY_SECTION.setdefault(_o.section, {})[_o.key] = _o


# ------------------------------------------------------------------------------- argparse

def add_options(parser: argparse.ArgumentParser, options: Iterable[Option], title: str) -> None:
    """Flags for ``options``; their argparse default is None so that 'not given' is visible."""
    group = parser.add_argument_group(title)
    for o in options:
        shown = _shown(o.setting)
        if o.type is bool:
            group.add_argument(o.cli_flag, dest=o.name, action=argparse.BooleanOptionalAction, default=None,
                               help=o.help + shown)
        else:
            group.add_argument(o.cli_flag, dest=o.name, default=None, metavar=o.metavar,
                               help=o.help + shown.replace("%", "%%"))


def _shown(setting: Setting) -> str:
    """' (1-10000, default: 20)': the range and default a flag's help ends with."""
    default = setting.default
    if isinstance(default, list):
        default = ",".join(map(str, default))
    elif setting.auto is not None and default == setting.auto:
        default = f"{default}, auto"
    bounds = (setting.min, setting.max)
    parts = [f"{S.number(bounds[0])}-{S.number(bounds[1])}"] if None not in bounds else []
    if default not in ("", None, False):
        parts.append(f"default: {default}")
    return f" ({', '.join(parts)})" if parts else ""


# ------------------------------------------------------------------------------- TOML

def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file as a dict; InputError naming the file and line when it is not valid TOML."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"config file not found: {p}") from None
    except IsADirectoryError:
        raise InputError(f"the config file {p} is a folder; give a .toml file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{p} is not valid TOML: {e}") from None


def _coerce(o: Option, value: Any, where: str) -> Any:
    """A value from the file or the command line, as the option's type."""
    if o.type is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{where} must be true or false, got {value!r}")
    if o.type in (int, float):
        # TOML integers serve float options; a float never silently truncates into an int one
        kinds = (int,) if o.type is int else (int, float)
        if isinstance(value, kinds) and not isinstance(value, bool):
            return o.type(value)
        if isinstance(value, str):
            try:
                return o.type(value.strip())
            except ValueError:
                pass
        what = "a whole number" if o.type is int else "a number"
        raise InputError(f"{where} must be {what}, got {value!r}")
    if o.type is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise InputError(f"{where} must be a list of whole numbers, got {value!r}")
        try:
            return [int(str(v).strip()) for v in items if str(v).strip()]
        except ValueError:
            raise InputError(f"{where} must be a list of whole numbers, got {value!r}") from None
    if not isinstance(value, str):
        raise InputError(f"{where} must be text, got {value!r}")
    return value


def config_values(data: Mapping[str, Any], source: str | Path) -> dict[str, Any]:
    """{option name: value} from a parsed config; unknown sections/keys and wrong types are errors."""
    out: dict[str, Any] = {}
    base = Path(source).expanduser().absolute().parent
    for section, table in data.items():
        if section not in BY_SECTION:
            raise InputError(f"{source}: unknown section [{section}]; the sections are "
                             f"{', '.join(f'[{s}]' for s in BY_SECTION)}")
        if not isinstance(table, Mapping):
            raise InputError(f"{source}: [{section}] must be a table of settings, got {table!r:.60}")
        known = BY_SECTION[section]
        for key, value in table.items():
            if key not in known:
                raise InputError(f"{source}: unknown setting {key!r} in [{section}]; the settings there are "
                                 f"{', '.join(known)}")
            o = known[key]
            value = _coerce(o, value, f"{source}: [{section}] {key}")
            if o.path and value:
                p = Path(os.path.expanduser(value))
                # relative to the config file when it exists there; else kept as a name to look up
                if not p.is_absolute() and (base / p).exists():
                    value = str(base / p)
                elif p.is_absolute():
                    value = str(p)
            out[o.name] = value
    return out


# ------------------------------------------------------------------------------- settings

class Settings:
    """Resolved option values: ``settings.edit_steps``, ``settings.llm_base_url``, ...

    ``given`` holds the names set on the command line or in the config file (not defaults).
    """

    def __init__(self, values: Mapping[str, Any], given: Iterable[str] = (), config_file: str | None = None):
        self._values = dict(values)
        self.given = set(given)
        self.config_file = config_file

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def by_setting(self, options: Iterable[Option]) -> dict[str, Any]:
        """{setting name: value} of ``options``: what the library's records are made from."""
        return {o.setting.name: self._values[o.name] for o in options}


def resolve_settings(args: argparse.Namespace, options: Sequence[Option] = ALL_OPTIONS) -> Settings:
    """Defaults, then the --config file, then flags."""
    from_file: dict[str, Any] = {}
    config = getattr(args, "config", None)
    if config:
        from_file = config_values(read_toml(config), config)
    values: dict[str, Any] = {}
    given: set[str] = set()
    wrong: list[str] = []
    for o in options:
        value = o.default
        if o.name in from_file:
            value = from_file[o.name]
            given.add(o.name)
            where = f"{config}: [{o.section}] {o.key}"
        flag = getattr(args, o.name, None)
        if flag is not None:
            value = _coerce(o, flag, o.cli_flag)
            given.add(o.name)
            where = o.cli_flag
        if o.name in given and o.setting.problem(value):
            wrong.append(f"{where}: {o.setting.problem(value)}")
        values[o.name] = list(value) if isinstance(value, list) else value
    if wrong:
        raise InputError("settings out of range:\n" + "\n".join(f"  - {w}" for w in wrong))
    for name, value in from_file.items():  # settings of other subcommands stay readable
        values.setdefault(name, value)
    return Settings(values, given, config)


# ------------------------------------------------------------------------------- model files

def find_model(value: str, key: str, what: str, expected: Sequence[str], source: str, models_dir: str = "",
               folder_ok: bool = True) -> Path:
    """A model path from a flag or config value: an existing path as given, else the name looked up in
    the models folder's sub-folders for ``key``; with no value, the ``expected`` official names.

    ModelNotFoundError (every folder searched, the names expected, where to get them) otherwise.
    """
    folders = subfolders(models_dir, key) if models_dir else []
    if value:
        p = Path(os.path.expanduser(value))
        if p.exists():
            return p
        names = [value]
    else:
        names = []
    found = find_in_folders(folders, names or list(expected), folder_ok)
    if found is not None:
        return found
    searched: list[str | Path] = [Path.cwd()] if value and not Path(value).is_absolute() else []
    searched += folders
    if not value and not folders:
        raise ModelNotFoundError(what + " (no file given and no models folder to look in: pass the path, or "
                                 "--models-dir)", list(expected), [], source)
    raise ModelNotFoundError(what, names + [n for n in expected if n not in names], searched, source)


def find_perception_models(settings: Settings) -> tuple[Path, Path | None, Path]:
    """(GroundingDINO weights, its BERT folder or None for a Hugging Face folder, SAM file)."""
    gdino = find_model(settings.models_grounding_dino, "grounding-dino", "GroundingDINO model",
                       sources.GROUNDING_DINO_FILES, sources.GROUNDING_DINO_SOURCE, settings.models_dir,
                       folder_ok=False)
    bert = None
    if not gdino.is_dir():
        bert = find_model(settings.models_text_encoder, "bert-base-uncased",
                          "GroundingDINO text encoder (a bert-base-uncased folder)", (sources.BERT_FOLDER,),
                          sources.BERT_SOURCE, settings.models_dir)
    sam = find_model(settings.models_sam, "sams", "SAM model", sources.SAM_FILES, sources.SAM_SOURCE,
                     settings.models_dir, folder_ok=False)
    return gdino, bert, sam


INPAINT_SOURCE = ("Hugging Face: an SD1.5/SD2 inpainting model in diffusers format (a folder with model_index.json), "
                  "or one .safetensors checkpoint plus --inpaint-config")


def find_inpaint_model(settings: Settings) -> tuple[Path, Path | None]:
    """(the inpainting model, its config folder for single files, or None)."""
    if not settings.models_inpaint:
        raise InputError("no inpainting model given: pass --inpaint PATH (a diffusers inpainting folder, or a "
                         ".safetensors file with --inpaint-config DIR), or set inpaint in [models] of --config")
    path = find_model(settings.models_inpaint, "inpaint", "Inpainting model", (), INPAINT_SOURCE,
                      settings.models_dir, folder_ok=False)
    config = None
    if settings.models_inpaint_config:
        config = Path(os.path.expanduser(settings.models_inpaint_config))
        if not config.is_dir():
            raise ModelNotFoundError("Inpainting config folder", [config.name], [config.parent],
                                     "cielr_core.editing.sd_configs.write_sd15_config (SD1.5 configs, offline)")
    return path, config


def find_local_llm(settings: Settings) -> Path:
    return find_model(settings.llm_local, "LLM", "Local LLM", ("a .gguf file", "a folder with config.json"),
                      "Hugging Face (an instruct model's folder or GGUF file) into models/LLM", settings.models_dir,
                      folder_ok=False)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


__all__ = [
    "ALL_OPTIONS", "EDIT_OPTIONS", "LLM_OPTIONS", "METRIC_OPTIONS", "MODEL_OPTIONS",
    "PERCEPTION_OPTIONS", "Option", "Settings", "add_options", "config_values", "find_inpaint_model",
    "find_local_llm", "find_model", "find_perception_models", "read_toml", "resolve_device", "resolve_settings",
]
