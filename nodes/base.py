"""CIELRNode: the base of every CIELR node, on ComfyUI's V3 schema (``comfy_api.latest``).

A node says what ComfyUI shows in its class line and a few class attributes and does its work in
``execute``; ``define_schema`` is built here from them, so every node gets its category by stage, its
description from the docstring, a tooltip on every output and its search aliases alike. Adding a
node::

    class CIELRDoThing(CIELRNode, title="CIELR Do Thing", stage=SCENE, aliases=("do thing", "thing")):
        '''What the node does, for people: ComfyUI shows it as the node's description.'''

        OUTPUTS = (out(Scene, "scene", "What comes out, for whom."),)
        INPUTS = (socket(io.Image, "image", "The photo."), widget(S.GROW),
                  socket(Segmenter, "segmenter", "Optional: ...", optional=True))

        @classmethod
        def execute(cls, image, grow, segmenter=None) -> io.NodeOutput:
            rgb = single_image(image, cls.TITLE)  # converters: nodes/bridge.py
            ...  # one call into cielr_core, which decides everything
            return io.NodeOutput(scene)

then list it in its module's ``NODES`` (``nodes/__init__.py`` registers every module's list). The class
name is the node id (``NODE_ID``), the title its display name, the stage its category (CIELR/scene).
A node whose inputs list what is found at run time (model files, samplers) defines ``inputs()``
instead of ``INPUTS``: it is called each time ComfyUI asks, so the lists stay fresh. Rules:

- Never rename a node id (its class), an input or an output, never reorder inputs or outputs of a released node;
  a new input goes last, optional, with a default that keeps old behaviour.
- Every widget comes from ``cielr_core.settings`` through ``widget(S.X)`` (default, range, step and
  tooltip are the schema's; a test compares every node input with it), except lists found at run time
  (model files, samplers: ``choice``). A new setting goes into the schema first (a table in
  ``cielr_core/settings.toml``).
- ``execute`` is a classmethod on a locked copy of the class: no instance state. Models stay in
  ``nodes/memory.py``'s cache, other state in a ``cielr_core.cache.LRU``.
- ComfyUI internals (``comfy.*``, ``folder_paths``...) only through ``nodes/comfy_internals.py``.
- ``fingerprint_inputs`` (V1: IS_CHANGED) where a file on disk can change under the same inputs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import numpy as np
from comfy_api.latest import io, ui

from cielr_core.settings import Setting

# categories, by the stage of the method a node belongs to
PERCEPTION, SCENE, REASONING, EDITING, INTEROP = "perception", "scene", "reasoning", "editing", "interop"
STAGES = (PERCEPTION, SCENE, REASONING, EDITING, INTEROP)

# the pack's own types (public API: saved workflows name them) and other packs' types it reads
Scene = io.Custom("CIELR_SCENE")
Plan = io.Custom("CIELR_PLAN")
Detector = io.Custom("CIELR_DETECTOR")
Segmenter = io.Custom("CIELR_SEGMENTER")
LLM = io.Custom("CIELR_LLM")
BBox = io.Custom("BBOX")
BoundingBox = io.Custom("BOUNDING_BOX")  # core SAM3 Detect's boxes (io.BoundingBox in newer cores)
Segs = io.Custom("SEGS")


class Out(NamedTuple):
    kind: Any  # an io type: io.Image, Scene, ...
    name: str
    tooltip: str
    is_list: bool = False


def out(kind: Any, name: str, tooltip: str, is_list: bool = False) -> Out:
    """An output: its type, its name (shown on the socket) and a tooltip (every output has one)."""
    return Out(kind, name, tooltip, is_list)


def socket(kind: Any, name: str, tooltip: str, optional: bool = False) -> io.Input:
    """An input without a widget (IMAGE, MODEL, CIELR_SCENE...)."""
    return kind.Input(name, tooltip=tooltip, optional=optional)


def choice(name: str, options: list[str], tooltip: str) -> io.Input:
    """A list found when ComfyUI asks (model files, samplers); every other widget is a ``widget``."""
    return io.Combo.Input(name, options=list(options), tooltip=tooltip)


def widget(setting: Setting, optional: bool = False, lazy: bool | None = None) -> io.Input:
    """The input of a schema setting: its name, type, default, range, step and help as tooltip. ``lazy``: the
    node's ``check_lazy_status`` decides whether the value is computed at all."""
    s, common = setting, {"default": setting.default, "tooltip": setting.help, "optional": optional, "lazy": lazy}
    if s.choices is not None:
        made = io.Combo.Input(s.name, options=list(s.choices), **common)
    elif s.type is bool:
        made = io.Boolean.Input(s.name, **common)
    elif s.type is int:
        made = io.Int.Input(s.name, min=s.widget_min, max=s.max, step=s.step,
                            control_after_generate=s.control_after_generate, **common)
    elif s.type is float:
        made = io.Float.Input(s.name, min=s.widget_min, max=s.max, step=s.step, round=s.round, **common)
    elif s.type is str:
        made = io.String.Input(s.name, multiline=s.multiline, **common)
    else:
        raise TypeError(f"{s.name}: no widget for {s.type.__name__} settings")
    made.setting = setting  # which schema entry it came from (the schema test reads it)
    return made


def aliases_if_supported(schema_type: type, aliases: Iterable[str]) -> dict[str, list[str]]:
    """``{"search_aliases": [...]}`` when ComfyUI's Schema has that field (newer ComfyUI's node search
    finds a node by them), else nothing: the feature is detected, the version never compared."""
    fields = {f.name for f in dataclasses.fields(schema_type)}
    return {"search_aliases": list(aliases)} if "search_aliases" in fields and aliases else {}


class CIELRNode(io.ComfyNode):
    NODE_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    STAGE: ClassVar[str] = ""
    SEARCH_ALIASES: ClassVar[tuple[str, ...]] = ()  # what else people type to find it (newer ComfyUI)
    SHOWS_RESULT: ClassVar[bool] = False  # an output node: runs even when nothing is connected to it
    OUTPUTS: ClassVar[tuple[Out, ...]] = ()
    INPUTS: ClassVar[tuple[io.Input, ...]] = ()

    def __init_subclass__(cls, title: str = "", stage: str = "", aliases: tuple[str, ...] = (),
                          shows_result: bool | None = None, **kwargs: Any):
        # ComfyUI runs a node on a clone of its class, made without these arguments: only what is given is set
        super().__init_subclass__(**kwargs)
        if title:
            cls.NODE_ID, cls.TITLE = cls.__name__, title
        if stage:
            cls.STAGE = stage
        if aliases:
            cls.SEARCH_ALIASES = tuple(aliases)
        if shows_result is not None:
            cls.SHOWS_RESULT = shows_result

    @classmethod
    def inputs(cls) -> list[io.Input]:
        return [copy.copy(i) for i in cls.INPUTS]  # a copy per schema, as a fresh schema would hold

    @classmethod
    def define_schema(cls) -> io.Schema:
        if cls.STAGE not in STAGES:
            raise TypeError(f"{cls.__name__}: STAGE must be one of {STAGES}, got {cls.STAGE!r}")
        missing = [o.name for o in cls.OUTPUTS if not o.tooltip]
        if missing:
            raise TypeError(f"{cls.__name__}: give every output a tooltip ({', '.join(missing)} has none)")
        # no ids: ComfyUI numbers them, apart from the input ids; the name is what the socket shows
        outputs = [o.kind.Output(display_name=o.name, tooltip=o.tooltip, is_output_list=o.is_list)
                   for o in cls.OUTPUTS]
        return io.Schema(node_id=cls.NODE_ID, display_name=cls.TITLE, category=f"CIELR/{cls.STAGE}",
                         description=" ".join((cls.__doc__ or "").split()),  # one line, as ComfyUI shows it
                         inputs=cls.inputs(), outputs=outputs, is_output_node=cls.SHOWS_RESULT,
                         **aliases_if_supported(io.Schema, cls.SEARCH_ALIASES))

    @classmethod
    def execute(cls, **kwargs) -> io.NodeOutput:
        raise NotImplementedError(f"{cls.__name__} does not run")

    @classmethod
    def preview(cls, images: Any) -> ui.PreviewImage:
        """Images shown on the node: an IMAGE tensor, or H x W x 3 uint8 arrays."""
        from .bridge import to_image

        if isinstance(images, list):
            images = np.stack(images) if images else images
        tensor = to_image(images) if isinstance(images, np.ndarray) else images
        return ui.PreviewImage(tensor, cls=cls)


def mappings(*modules: Any) -> tuple[dict[str, type], dict[str, str]]:
    """NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS of the nodes the modules list in ``NODES``."""
    nodes = [node for module in modules for node in module.NODES]
    ids = [n.NODE_ID for n in nodes]
    if len(set(ids)) != len(ids) or not all(ids):
        raise TypeError(f"node ids must be set and unique: {ids}")
    return {n.NODE_ID: n for n in nodes}, {n.NODE_ID: n.TITLE for n in nodes}
