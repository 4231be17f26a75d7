"""What a real ComfyUI serves for the CIELR nodes: every widget as the settings schema declares it,
every node id, input and output of the version before the V3 port still there, a stage category
and a tooltip on every output."""

from __future__ import annotations

import json

import pytest

from cielr_core import settings as S
from tests.conftest import REPO

RECORDED = json.loads((REPO / "tests" / "data" / "object_info_before_v3.json").read_text())
SECTIONS = ("required", "optional")


@pytest.fixture(scope="module")
def info(comfyui, built) -> dict:
    served = comfyui.object_info()
    assert set(built) <= set(served)
    return {k: served[k] for k in built}  # the pack's nodes (the test nodes are named CIELRTest...)


@pytest.fixture(scope="module")
def built():
    """Each node's inputs as the pack builds them (to know which schema setting each came from)."""
    from devkit.comfyui import import_comfyui

    import_comfyui()
    import nodes

    return {node_id: {i.id: i for i in cls.define_schema().inputs}
            for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items()}


def _inputs(spec: dict):
    for section in SECTIONS:
        yield from spec["input"].get(section, {}).items()


def _is_combo(kind) -> bool:
    return isinstance(kind, list) or kind == "COMBO"


def test_every_widget_is_the_schema_setting_it_was_built_from(info, built):
    checked = 0
    for node_id, spec in info.items():
        for name, (kind, options) in _inputs(spec):
            setting = getattr(built[node_id][name], "setting", None)
            if setting is None:
                # sockets, and lists found when ComfyUI asks (model files, samplers): nothing of the schema
                assert kind not in ("INT", "FLOAT", "STRING", "BOOLEAN") and (
                    not _is_combo(kind) or not any(s.name == name and s.choices for s in S.ALL)), \
                    f"{node_id}.{name} is a widget that does not come from cielr_core.settings"
                continue
            checked += 1
            assert S.NODE in setting.layers and setting.name == name, f"{node_id}.{name}"
            expected = {"default": setting.default, "min": setting.widget_min, "max": setting.max,
                        "step": setting.step, "tooltip": setting.help}
            got = {k: options.get(k) for k in expected}
            assert got == expected, f"{node_id}.{name}"
            if setting.choices is not None:
                assert options["options"] == list(setting.choices), f"{node_id}.{name}"
            if kind == "INT" and name == "seed":
                assert options["control_after_generate"] is setting.control_after_generate is not None
    assert checked > 40


def test_only_the_sampling_seed_changes_after_each_run(info):
    """An INT named seed gets the frontend's "control after generate" unless it says False: only Inpaint
    Actions' sampling seed re-rolls, as KSampler's does; the LLMs' seeds stay as set."""
    seeds = {node_id: opts for node_id, spec in info.items() for name, (kind, opts) in _inputs(spec)
             if name == "seed"}
    assert set(seeds) == {"CIELRInpaintActions", "CIELRLLMRemote", "CIELRLLMLocal", "CIELRLLMFromCLIP"}
    assert {n for n, opts in seeds.items() if opts["control_after_generate"]} == {"CIELRInpaintActions"}
    assert {seeds[n]["default"] for n in ("CIELRLLMLocal", "CIELRLLMRemote", "CIELRLLMFromCLIP")} == {0}


def test_saved_workflows_and_api_graphs_of_the_previous_version_still_fit(info):
    """Node ids, input names and order, output types, names and order, as the recorded object_info of
    the version before the port has them; anything new is an optional input after the old ones."""
    assert set(RECORDED) <= set(info)
    for node_id, before in RECORDED.items():
        now = info[node_id]
        assert now["display_name"] == before["display_name"] and now["output_node"] == before["output_node"]
        assert (now["output"], now["output_name"]) == (before["output"], before["output_name"]), node_id
        assert list(now["output_is_list"]) == list(before["output_is_list"]), node_id
        for section in SECTIONS:
            old = before["input_order"].get(section, [])
            new = now["input_order"].get(section, [])
            assert new[:len(old)] == old, f"{node_id} {section}: {old} became {new}"
            if section == "required":
                assert new == old, f"{node_id}: a new required input breaks saved API graphs"
            for name in old:
                was, is_ = before["input"][section][name][0], now["input"][section][name][0]
                # the same type, a list of choices still, or a union of types that includes the old one
                widened = isinstance(is_, str) and isinstance(was, str) and was in is_.split(",")
                assert widened or (_is_combo(was) and _is_combo(is_)), f"{node_id}.{name}: {was} -> {is_}"


def test_every_node_sits_in_its_stage_and_tells_what_each_output_is(info):
    stages = {"perception", "scene", "reasoning", "editing", "interop"}
    for node_id, spec in info.items():
        assert spec["category"].split("/")[0] == "CIELR" and spec["category"].split("/")[1] in stages, node_id
        assert spec["description"] and all(spec["output_tooltips"]), node_id
    assert info["CIELRVerifyEdit"]["category"] == "CIELR/editing"
    assert {info[n]["category"] for n in ("CIELRLLMRemote", "CIELRLLMLocal")} == {"CIELR/reasoning"}
    assert {info[n]["category"] for n in ("CIELRGroundingDINOLoader", "CIELRSAMLoader")} == {"CIELR/perception"}


def test_lists_are_read_when_the_frontend_asks(comfyui):
    """Model files and samplers are listed afresh on every object_info request, as core loaders do."""
    folder = comfyui.base / "models" / "sams"
    folder.mkdir(parents=True, exist_ok=True)
    name = "cielr_listed_now.pth"
    assert name not in json.dumps(comfyui.object_info()["CIELRSAMLoader"]["input"])
    (folder / name).write_bytes(b"")
    try:
        options = comfyui.object_info()["CIELRSAMLoader"]["input"]["required"]["model_name"]
        assert name in json.dumps(options)
    finally:
        (folder / name).unlink()
