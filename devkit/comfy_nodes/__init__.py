"""Test-only ComfyUI nodes, linked into the tests' servers and never shipped: other packs' Python
types handed to CIELR (``interop``), and small text encoders of the real conditioning shapes plus a
sampling recorder for the checkpoint-family tests (``families``)."""

from .families import NODE_CLASS_MAPPINGS as _FAMILIES
from .interop import NODE_CLASS_MAPPINGS as _INTEROP

NODE_CLASS_MAPPINGS = {**_INTEROP, **_FAMILIES}
