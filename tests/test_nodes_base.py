"""CIELRNode derives ComfyUI's class attributes from a node's compact declaration."""

from __future__ import annotations

import pytest

from nodes.base import CIELRNode


class _Example(CIELRNode):
    """First line of the description,
    wrapped in the source: ComfyUI shows one line."""

    FUNCTION = "run"
    OUTPUTS = (("IMAGE", "image", "The result."), ("STRING", "report", "What happened."))
    INPUTS = {"required": {"count": ("INT", {"default": 1, "tooltip": "How many."})}}


def test_outputs_and_docstring_become_comfyui_attributes():
    assert _Example.CATEGORY == "CIELR"
    assert _Example.RETURN_TYPES == ("IMAGE", "STRING")
    assert _Example.RETURN_NAMES == ("image", "report")
    assert _Example.OUTPUT_TOOLTIPS == ("The result.", "What happened.")
    assert _Example.DESCRIPTION == "First line of the description, wrapped in the source: ComfyUI shows one line."


def test_outputs_without_tooltips_declare_none():
    class Plain(CIELRNode):
        """Plain."""

        OUTPUTS = (("MASK", "mask"),)

    assert Plain.RETURN_TYPES == ("MASK",) and not hasattr(Plain, "OUTPUT_TOOLTIPS")


def test_tooltips_on_some_outputs_only_is_an_error():
    with pytest.raises(TypeError, match="every output a tooltip"):
        class Partial(CIELRNode):
            OUTPUTS = (("MASK", "mask", "A mask."), ("STRING", "text"))


def test_input_types_is_a_fresh_copy_each_call():
    first = _Example.INPUT_TYPES()
    first["required"]["count"][1]["default"] = 99  # ComfyUI may annotate what it gets
    assert _Example.INPUT_TYPES()["required"]["count"][1]["default"] == 1
    assert _Example.INPUTS["required"]["count"][1]["default"] == 1
