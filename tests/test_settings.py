"""The settings schema is the one source of every setting's default, range and help: the library's
records, the command line and the nodes are built from it and agree with it."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re

import pytest

from cielr_core import config
from cielr_core import settings as S
from cielr_core.editing import EditSettings
from cielr_core.editing.engine import SamplerSettings
from cielr_core.errors import InputError
from cielr_core.pipeline import PipelineSettings
from cielr_core.verify import VerifySettings
from tests.conftest import REPO


def outside(setting: S.Setting):
    """A value just outside the setting's range (or not among its choices)."""
    if setting.choices is not None:
        return "no such choice"
    if setting.max is not None:
        return setting.max + (1 if setting.type is int else 0.5)
    return setting.min - 1


RANGED = [s for s in S.ALL if s.choices is not None or s.max is not None or s.min is not None]


def test_every_setting_is_well_formed():
    for s in S.ALL:
        assert s.layers and s.layers <= S.ALL_LAYERS, s
        assert s.help.strip() and s.help.endswith("."), s.name
        assert s.problem(s.default) is None, f"{s.name}: the default {s.default!r} is outside its own range"
        assert isinstance(s.default, s.type), s.name
        if s.type in (int, float):
            assert s.min is not None and s.max is not None or s.layers == {S.CLI}, f"{s.name} has no range"
    assert S.SAMPLING_SEED_MAX != S.LLM_SEED_MAX  # two seeds, two ranges, two names


@pytest.mark.parametrize("setting", RANGED, ids=lambda s: s.name)
def test_a_value_outside_the_range_is_named(setting):
    problem = setting.problem(outside(setting))
    assert problem and setting.name in problem
    with pytest.raises(InputError, match=setting.name):
        setting.check(outside(setting))


def _names_used_from_settings(tree: ast.AST) -> set[str]:
    """The names a module takes from cielr_core.settings: ``from ..settings import X`` and ``S.X`` where
    ``S`` is the module imported under some name."""
    aliases, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if node.module and node.module.endswith("settings"):
                    used.add(a.name)
                elif a.name == "settings":
                    aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            used.add(node.attr)
    return used


def test_every_name_the_code_takes_from_the_schema_is_declared():
    # settings.toml's tables are read at import, so no type checker sees their names: this test does
    used = {}
    for path in REPO.rglob("*.py"):
        if ".git" not in path.parts:
            for name in _names_used_from_settings(ast.parse(path.read_text())):
                used.setdefault(name, path.relative_to(REPO))
    assert {"GROW", "MAX_ROUNDS", "SAMPLING_SEED_MAX", "Setting"} <= set(used)  # the scan finds both forms
    missing = {name: str(where) for name, where in used.items() if not hasattr(S, name)}
    assert not missing, f"names taken from cielr_core.settings that it does not declare: {missing}"


@pytest.mark.parametrize("row, says", [
    ({"name": "x", "type": "int", "default": 1, "hlep": "Typo."}, "unknown keys ['hlep']"),
    ({"name": "x", "type": "integer", "default": 1, "help": "Bad type."}, "type must be one of"),
    ({"name": "x", "type": "int", "default": 1, "layers": ["gui"], "help": "Bad layer."}, "layers must be"),
    ({"name": "x", "default": 1, "help": "No type."}, "type"),
    ({"like": "GROWTH", "help": "No such base."}, "like must name a setting declared above it"),
])
def test_a_malformed_table_of_the_schema_is_named(row, says):
    with pytest.raises(ValueError, match=r"settings\.toml \[X\].*" + re.escape(says)):
        S.declare("X", row, {})


def test_like_takes_the_value_facts_and_keeps_its_own_help_layers_and_flag():
    assert (S.VERIFY_GROW.min, S.VERIFY_GROW.max, S.VERIFY_GROW.default) == (S.GROW.min, S.GROW.max, S.GROW.default)
    assert S.VERIFY_GROW.help != S.GROW.help and S.VERIFY_GROW.layers == {S.NODE} and S.VERIFY_GROW.cli is None
    assert S.SERVER_URL.name == S.LLM_URL.name and S.SERVER_URL.default != S.LLM_URL.default


def test_auto_is_accepted_outside_the_range():
    assert S.WORKING_SIZE.problem(0) is None and S.WORKING_SIZE.problem(8) is not None
    assert S.WORKING_SIZE.widget_min == 0 and S.GROW.widget_min == S.GROW.min


# ---------------------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    config.add_options(parser, config.ALL_OPTIONS, "all")
    return parser


def test_every_command_line_setting_has_its_flag_and_every_flag_its_setting():
    by_setting = [o.setting for o in config.ALL_OPTIONS]
    assert all(S.CLI in s.layers for s in by_setting)
    assert {id(s) for s in S.ALL if S.CLI in s.layers} == {id(s) for s in by_setting}
    assert len(by_setting) == len({id(s) for s in by_setting})


@pytest.mark.parametrize("option", config.ALL_OPTIONS, ids=lambda o: o.name)
def test_each_flag_shows_the_schemas_help_default_and_range(option):
    action = next(a for a in _parser()._actions if a.dest == option.name)
    s = option.setting
    assert action.help.startswith(s.help)
    if s.min is not None and s.max is not None:
        assert f"{S.number(s.min)}-{S.number(s.max)}" in action.help
    resolved = config.resolve_settings(_parser().parse_args([]), config.ALL_OPTIONS)
    assert getattr(resolved, option.name) == s.default


@pytest.mark.parametrize("option", [o for o in config.ALL_OPTIONS if o.setting in RANGED], ids=lambda o: o.name)
def test_a_flag_or_file_value_outside_the_range_is_refused_by_name(option, tmp_path):
    bad = outside(option.setting)
    args = _parser().parse_args([option.cli_flag, str(bad)])
    with pytest.raises(InputError, match=rf"{option.cli_flag}: {option.setting.name} must be"):
        config.resolve_settings(args, config.ALL_OPTIONS)
    toml = tmp_path / "c.toml"
    toml.write_text(f"[{option.section}]\n{option.key} = {bad!r}\n".replace("'", '"'))
    args = _parser().parse_args([])
    args.config = str(toml)
    with pytest.raises(InputError, match=rf"\[{option.section}\] {option.key}: {option.setting.name} must be"):
        config.resolve_settings(args, config.ALL_OPTIONS)


def test_the_command_line_builds_the_same_records_as_the_nodes():
    from cielr_core.cli.common import pipeline_settings

    args = _parser().parse_args(["--grow", "700", "--steps", "5000", "--labels", "tv", "--working-size", "0"])
    built = pipeline_settings(config.resolve_settings(args, config.ALL_OPTIONS))
    assert (built.edit.grow, built.extra_labels, built.edit.working_size) == (700, "tv", 0)
    assert PipelineSettings.of({"grow": 700, "extra_labels": "tv", "working_size": 0}) == built


# ---------------------------------------------------------------------------------------- library

RECORDS = [
    (EditSettings, "edit", ["seed", "grow", "feather", "context", "working_size", "recolor_denoise", "candidates",
                            "retries"]),
    (PipelineSettings, "pipeline", ["box_threshold", "text_threshold", "max_rounds"]),
    (VerifySettings, "verify", ["box_threshold", "text_threshold"]),
]
BY_NAME = {s.name: s for s in S.ALL if S.LIBRARY in s.layers}


@pytest.mark.parametrize(("record", "what", "checked"), RECORDS, ids=lambda r: getattr(r, "__name__", ""))
def test_library_records_take_defaults_and_ranges_from_the_schema(record, what, checked):
    defaults = record()
    assert defaults.problems() == []
    for name in checked:
        setting = S.SAMPLING_SEED if name == "seed" else BY_NAME[name]
        assert getattr(defaults, name) == setting.default, name
        wrong = dataclasses.replace(defaults, **{name: outside(setting)})
        assert any(name in p for p in wrong.problems()), name


def test_sampler_settings_refuse_values_outside_the_schema():
    assert SamplerSettings().steps == S.STEPS.default and SamplerSettings().cfg == S.CFG.default
    for setting in (S.STEPS, S.CFG, S.GUIDANCE, S.EDIT_MODE):
        with pytest.raises(InputError, match=setting.name):
            SamplerSettings(**{setting.name: outside(setting)})
    assert SamplerSettings(steps=S.STEPS.max).steps == 10000  # the node's widest range holds in the library


def test_llm_clients_take_limits_and_defaults_from_the_schema():
    from cielr_core.llm import LocalLLM, RemoteLLM

    params = inspect.signature(RemoteLLM).parameters
    for setting in (S.LLM_TIMEOUT, S.LLM_MAX_RETRIES, S.LLM_MAX_TOKENS):
        assert params[setting.name].default == setting.default
    assert inspect.signature(LocalLLM).parameters["max_new_tokens"].default == S.LLM_MAX_TOKENS.default
    for setting in (S.LLM_TIMEOUT, S.LLM_MAX_RETRIES, S.LLM_MAX_TOKENS, S.TEMPERATURE, S.LLM_SEED):
        with pytest.raises(InputError, match=setting.name):
            RemoteLLM("http://127.0.0.1:9/v1", "m", **{setting.name: outside(setting)})
