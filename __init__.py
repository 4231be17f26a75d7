"""CIELR for ComfyUI: registers the nodes, the model folders and the example workflows.

Cheap and never raises: no model loads here, heavy libraries load when a node first runs, and a
broken import is logged instead of taking ComfyUI's start-up down with it.
"""

import logging
import os
import sys

# The library is imported as the top-level package ``cielr_core`` by the nodes, the command line
# and the tests alike, so class identity is the same everywhere.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
WEB_DIRECTORY = None

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F401,F811
    from .nodes.model_folders import register_model_folders

    register_model_folders()
except Exception:  # never take ComfyUI's start-up down with us
    logging.getLogger("cielr").exception("CIELR nodes could not be loaded")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
