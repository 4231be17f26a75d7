"""CIELRNode builds each node's V3 schema from its compact declaration: category by stage, the docstring
as description, a tooltip on every output, inputs from the settings schema, search aliases where
ComfyUI has them."""

from __future__ import annotations

import dataclasses

import pytest

from devkit.comfyui import import_comfyui

import_comfyui()  # the node classes are built on comfy_api
from comfy_api.latest import io  # noqa: E402

from cielr_core import settings as S  # noqa: E402
from nodes import base  # noqa: E402
from nodes.base import EDITING, CIELRNode, out, socket, widget  # noqa: E402


class _Example(CIELRNode):
    """First line of the description,
    wrapped in the source: ComfyUI shows one line."""

    NODE_ID = "CIELRExampleForTests"
    TITLE = "CIELR Example"
    STAGE = EDITING
    SEARCH_ALIASES = ("sample", "trial")
    OUTPUTS = (out(io.Image, "image", "The result."), out(io.String, "report", "What happened.", is_list=True))

    @classmethod
    def inputs(cls):
        return [socket(io.Image, "image", "The photo."), widget(S.GROW), widget(S.CANDIDATES, optional=True)]

    @classmethod
    def execute(cls, image, grow, candidates=1):
        return io.NodeOutput(image, f"grow {grow}")


def test_the_declaration_becomes_comfyuis_node_info():
    info = _Example.GET_NODE_INFO_V1()
    assert info["category"] == "CIELR/editing" and info["display_name"] == "CIELR Example"
    assert info["description"] == "First line of the description, wrapped in the source: ComfyUI shows one line."
    assert info["output"] == ["IMAGE", "STRING"] and info["output_name"] == ["image", "report"]
    assert info["output_tooltips"] == ["The result.", "What happened."] and info["output_is_list"] == [False, True]
    assert info["input_order"] == {"required": ["image", "grow"], "optional": ["candidates"]}
    grow = info["input"]["required"]["grow"]
    assert grow == ("INT", {"default": 8, "min": 0, "max": 4096, "step": 1, "tooltip": S.GROW.help})


def test_the_schema_is_built_afresh_each_time_comfyui_asks():
    first, again = _Example.define_schema(), _Example.define_schema()
    assert first.inputs[1] is not again.inputs[1] and first.inputs[1].setting is S.GROW


def test_an_output_without_a_tooltip_or_a_node_without_a_stage_is_refused():
    class Untold(_Example):
        OUTPUTS = (out(io.Mask, "mask", ""),)

    class Lost(_Example):
        STAGE = "misc"

    with pytest.raises(TypeError, match="every output a tooltip"):
        Untold.define_schema()
    with pytest.raises(TypeError, match="STAGE must be one of"):
        Lost.define_schema()


def test_seeds_say_whether_the_frontend_changes_them_after_each_run():
    """The frontend adds 'control after generate' to any INT input named seed unless told otherwise."""
    llm_seed, sampling_seed = widget(S.LLM_SEED).as_dict(), widget(S.SAMPLING_SEED).as_dict()
    assert llm_seed["control_after_generate"] is False and llm_seed["max"] == S.LLM_SEED_MAX
    assert sampling_seed["control_after_generate"] is True and sampling_seed["max"] == S.SAMPLING_SEED_MAX


def test_search_aliases_go_to_a_schema_that_has_the_field_and_nowhere_else():
    @dataclasses.dataclass
    class NewerSchema(io.Schema):  # a ComfyUI whose Schema knows search aliases
        search_aliases: list = dataclasses.field(default_factory=list)

    assert base.aliases_if_supported(NewerSchema, ("a", "b")) == {"search_aliases": ["a", "b"]}
    made = NewerSchema(node_id="x", **base.aliases_if_supported(NewerSchema, _Example.SEARCH_ALIASES))
    assert made.search_aliases == ["sample", "trial"]
    has_field = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}
    expected = {"search_aliases": ["sample", "trial"]} if has_field else {}
    assert base.aliases_if_supported(io.Schema, _Example.SEARCH_ALIASES) == expected
    _Example.define_schema()  # builds on this ComfyUI either way


def test_the_pack_registers_every_module_once_by_node_id():
    import nodes

    classes, titles = nodes.NODE_CLASS_MAPPINGS, nodes.NODE_DISPLAY_NAME_MAPPINGS
    assert classes and set(classes) == set(titles)
    for node_id, cls in classes.items():
        assert issubclass(cls, CIELRNode) and cls.NODE_ID == node_id and titles[node_id] == cls.TITLE
        assert cls.SEARCH_ALIASES, f"{node_id} has no search aliases"
    with pytest.raises(TypeError, match="unique"):
        base.mappings(type("M", (), {"NODES": (_Example, _Example)}))
