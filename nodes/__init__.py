"""Thin ComfyUI adapters, one module per pipeline stage. No algorithm lives here."""

import importlib.util

from . import editing, llm, llm_clip, loaders, perception, reasoning, scene, verify

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (loaders, perception, scene, llm, llm_clip, reasoning, editing, verify):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

# Scenes from other packs' masks, boxes and SEGS; scenes and plans out as MASK batches, prompts and SEGS;
# other packs' loaded SAM and GroundingDINO as the segmenter and detector.
from . import interop, other_packs

for _module in (interop, other_packs):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

# Nodes on ComfyUI's V3 schema: comfy_api exists inside ComfyUI only, not where the pack is imported alone.
if importlib.util.find_spec("comfy_api") is not None:
    from . import reasoning_io

    NODE_CLASS_MAPPINGS.update(reasoning_io.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(reasoning_io.NODE_DISPLAY_NAME_MAPPINGS)
