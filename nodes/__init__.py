"""Thin ComfyUI adapters, one module per pipeline stage. No algorithm lives here.

The node classes are built on ``comfy_api`` (ComfyUI's V3 schema), so they are imported when ComfyUI
asks for NODE_CLASS_MAPPINGS, not when a converter such as ``nodes.bridge`` is imported on its own.
"""

from __future__ import annotations

import importlib

MODULES = ("loaders", "perception", "scene", "llm", "llm_clip", "reasoning", "reasoning_io", "editing", "verify",
           "interop", "other_packs")
NEEDS = ("CIELR needs a ComfyUI whose comfy_api has the V3 node schema (comfy_api.latest; the pack is tested on "
         "ComfyUI 0.3.75): update ComfyUI")


def __getattr__(name: str):
    if name not in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        raise AttributeError(name)
    from . import comfy_internals

    try:
        from .base import mappings
    except ImportError as e:
        if e.name and e.name.startswith("comfy_api") and comfy_internals.comfy_available():
            raise ImportError(f"{NEEDS}: {e}") from e
        if comfy_internals.comfy_available():
            raise
        # imported outside ComfyUI (pytest imports the repository as a package): nothing to register
        classes, titles = {}, {}
    else:
        classes, titles = mappings(*(importlib.import_module(f"{__name__}.{m}") for m in MODULES))
    globals().update(NODE_CLASS_MAPPINGS=classes, NODE_DISPLAY_NAME_MAPPINGS=titles)
    return globals()[name]
