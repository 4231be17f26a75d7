"""Test-only ComfyUI nodes, linked into the tests' servers and never shipped: other packs' Python
types handed to CIELR (``interop``, core SAM3 Detect's outputs among them), small text encoders of the
real conditioning shapes plus a sampling recorder for the checkpoint-family tests (``families``), and a
CLIP that generates text by upstream's contract over a real small LLM (``textgen``)."""

from .families import NODE_CLASS_MAPPINGS as _FAMILIES
from .interop import NODE_CLASS_MAPPINGS as _INTEROP
from .textgen import NODE_CLASS_MAPPINGS as _TEXTGEN

NODE_CLASS_MAPPINGS = {**_INTEROP, **_FAMILIES, **_TEXTGEN}
