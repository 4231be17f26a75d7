"""CIELRNode: the one home of what every CIELR node class tells ComfyUI, declared compactly.

A node says what it returns as ``OUTPUTS`` (type, name and, where the node has them, a tooltip per
output), what it shows as its description in the class docstring, and, when its inputs do not depend
on anything found at run time, its inputs as ``INPUTS``. ComfyUI's own attributes (RETURN_TYPES,
RETURN_NAMES, OUTPUT_TOOLTIPS, DESCRIPTION, INPUT_TYPES) are derived from these, so they cannot
drift apart. Nodes whose choices are listed when ComfyUI asks (model files, samplers) define
``INPUT_TYPES`` as a classmethod of their own.
"""

from __future__ import annotations

import copy
from typing import ClassVar


class CIELRNode:
    CATEGORY = "CIELR"
    OUTPUTS: ClassVar[tuple] = ()
    INPUTS: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        doc = cls.__dict__.get("__doc__")
        if doc:
            # one line, as ComfyUI shows it: the docstring is wrapped for the source only
            cls.DESCRIPTION = " ".join(doc.split())
        if "OUTPUTS" in cls.__dict__:
            cls.RETURN_TYPES = tuple(output[0] for output in cls.OUTPUTS)
            cls.RETURN_NAMES = tuple(output[1] for output in cls.OUTPUTS)
            tips = [output[2] for output in cls.OUTPUTS if len(output) > 2]
            if tips:
                if len(tips) != len(cls.OUTPUTS):
                    raise TypeError(f"{cls.__name__}: give every output a tooltip, or none")
                cls.OUTPUT_TOOLTIPS = tuple(tips)

    @classmethod
    def INPUT_TYPES(cls):
        # a fresh copy per call: ComfyUI may annotate the dicts it gets
        return copy.deepcopy(cls.INPUTS)
