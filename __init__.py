"""CIELR for ComfyUI: registers the nodes, the model folders and the example workflows.

Cheap: no model loads here, and heavy libraries load when a node first runs. When the pack
cannot load (a requirement missing or too old, a broken install), the import raises: ComfyUI
catches it, logs "Cannot import ... module for custom nodes: <what to install>" and lists the pack
as "(IMPORT FAILED)", where users and ComfyUI-Manager look. Its start-up carries on either way.
"""

import logging
import os
import sys

# The library is imported as the top-level package ``cielr_core`` by the nodes, the command line
# and the tests alike, so class identity is the same everywhere.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

# frontend files: old saved workflows keep loading (cielr_seeds.js); Preview as Text stays out of the prompt
# (preview_any_display_only.js)
WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

# ComfyUI loads this file as a package. Loaded as a plain module (pytest collecting a checkout whose
# folder name is no Python identifier, such as comfyui-cielr) there is no pack to register.
if __package__:
    try:
        from cielr_core.dependencies import check_requirements

        check_requirements(os.path.join(_HERE, "requirements.txt"))
        from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
        from .nodes.model_folders import register_model_folders

        register_model_folders()
    except Exception:
        logging.getLogger("cielr").error("CIELR nodes could not be loaded; the reason follows as "
                                         "'Cannot import ... module for custom nodes'")
        raise

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
