"""Upstream ComfyUI's contracts as its own files state them, checked against the stand-ins and the pack.

No ComfyUI newer than 0.3.75 installs here, so the lines that define the contracts were copied from
upstream's files (repository comfyanonymous/ComfyUI; the paths and commits head each section of
tests/data/upstream/*.txt) and are kept in the repository: a fresh clone checks them offline. The
checks are static (Python's own parser), except one run of the SAM3 stand-in.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

UPSTREAM = Path(__file__).parent / "data" / "upstream"
HEADER = re.compile(r"^== (?P<path>\S+)(?: @ (?P<commit>[0-9a-f]{40}))? \((?P<what>.*)\)$")


@dataclass
class Section:
    path: str
    commit: str | None
    what: str
    statements: list[ast.stmt]


def _statement(line: str) -> ast.stmt:
    if line.startswith("@"):  # a decorator, on a stand-in class
        return ast.parse(f"{line}\nclass _: pass").body[0]
    if line.endswith(":"):  # a def line, with a stand-in body
        return ast.parse(f"{line} pass").body[0]
    return ast.parse(line).body[0]


def sections(name: str) -> list[Section]:
    found: list[Section] = []
    for line in (UPSTREAM / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head = HEADER.match(line)
        if head:
            found.append(Section(head["path"], head["commit"], head["what"], []))
        else:
            found[-1].statements.append(_statement(line))
    return found


def defs(section: Section) -> dict[str, ast.FunctionDef]:
    return {s.name: s for s in section.statements if isinstance(s, ast.FunctionDef)}


def calls(tree: ast.AST, method: str) -> list[ast.Call]:
    """Calls of ``<something>.<method>(...)`` where the something is a clip (``clip`` or ``self.clip``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method:
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name == "clip":
                found.append(node)
    return found


def _params(fn: ast.FunctionDef) -> list[tuple[str, object, str]]:
    """(name, default or inspect.Parameter.empty, kind) of a def, as inspect reports them."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + [ast.literal_eval(d)
                                                                                   for d in a.defaults]
    out = [(p.arg, d, "POSITIONAL_OR_KEYWORD") for p, d in zip(positional, defaults)]
    if a.vararg:
        out.append((a.vararg.arg, inspect.Parameter.empty, "VAR_POSITIONAL"))
    out += [(p.arg, inspect.Parameter.empty if d is None else ast.literal_eval(d), "KEYWORD_ONLY")
            for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append((a.kwarg.arg, inspect.Parameter.empty, "VAR_KEYWORD"))
    return out


def _signature(fn) -> list[tuple[str, object, str]]:
    return [(p.name, p.default, p.kind.name) for p in inspect.signature(fn).parameters.values()]


def _accepts(fn: ast.FunctionDef) -> tuple[set[str], bool]:
    """The keyword names a def takes, and whether it takes any (**kwargs)."""
    names = {name for name, _, kind in _params(fn) if kind in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")}
    return names - {"self"}, fn.args.kwarg is not None


TEXTGEN = sections("comfyui_textgen.txt")
CLIP_DEFS = [s for s in TEXTGEN if s.path == "comfy/sd.py"]
TEXT_GENERATE = [s for s in TEXTGEN if s.path == "comfy_extras/nodes_textgen.py"]


def test_the_upstream_text_names_its_sources():
    assert CLIP_DEFS and TEXT_GENERATE
    assert all(s.commit for s in TEXTGEN), "every text-generation section names its commit"
    newest = CLIP_DEFS[0]
    assert "newest" in newest.what and set(defs(newest)) == {"tokenize", "generate", "decode"}


def test_the_test_clip_has_upstreams_signatures():
    from devkit.comfy_nodes.textgen import TextGenCLIP

    for name, fn in defs(CLIP_DEFS[0]).items():
        assert _signature(getattr(TextGenCLIP, name)) == _params(fn), f"TextGenCLIP.{name} differs from upstream's"


@pytest.mark.parametrize("section", [s for s in TEXT_GENERATE if s.commit in {c.commit for c in CLIP_DEFS}],
                         ids=lambda s: s.commit[:8])
def test_every_stored_generate_text_call_binds_to_the_test_clip(section):
    """Core's Generate Text node, as each version whose CLIP is stored calls a CLIP, can call the test-only CLIP
    (the newest Generate Text passes ``mtp``, which a CLIP newer than any stored one takes)."""
    from devkit.comfy_nodes.textgen import TextGenCLIP

    clip = TextGenCLIP("unused.gguf")
    seen = set()
    for method in ("tokenize", "generate", "decode"):
        for call in calls(ast.Module(body=section.statements, type_ignores=[]), method):
            seen.add(method)
            signature = inspect.signature(getattr(clip, method))
            signature.bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords})
    assert "tokenize" in seen and "decode" in seen


INTERNALS = REPO / "nodes" / "comfy_internals.py"
GENERATION = ("can_generate", "generation_tokens", "generate_text", "first_sequence")


def _generation_calls() -> ast.Module:
    """The functions of nodes/comfy_internals.py through which the adapter calls a CLIP that generates (the
    module's other CLIP calls, for conditioning, follow another contract)."""
    tree = ast.parse(INTERNALS.read_text())
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in GENERATION]
    assert len(found) == len(GENERATION), [n.name for n in found]
    return ast.Module(body=found, type_ignores=[])


def test_the_adapter_calls_only_what_every_core_with_generation_accepts():
    """The adapter (its CLIP calls live in nodes/comfy_internals.py, section "text generation by a CLIP") passes
    each CLIP method only keywords that every stored core version takes: generate's and decode's by their
    signatures, tokenize's (which hands ``**kwargs`` to the model's tokenizer) those that the newest Generate Text
    node passes."""
    tree = _generation_calls()
    newest_tokenize = {k.arg for k in calls(ast.Module(body=TEXT_GENERATE[0].statements, type_ignores=[]),
                                            "tokenize")[0].keywords}
    for method in ("tokenize", "generate", "decode"):
        made = calls(tree, method)
        assert made, f"the adapter never calls clip.{method}"
        for call in made:
            keywords = {k.arg for k in call.keywords}
            assert len(call.args) == 1, f"clip.{method} gets {len(call.args)} positional arguments"
            for section in CLIP_DEFS:
                accepted, any_keyword = _accepts(defs(section)[method])
                if method == "tokenize":
                    assert any_keyword and keywords <= newest_tokenize, keywords - newest_tokenize
                else:
                    assert keywords <= accepted, f"{section.commit[:8]} CLIP.{method} lacks {keywords - accepted}"


def test_the_adapter_detects_the_feature_without_version_numbers():
    source = (REPO / "nodes" / "llm_clip.py").read_text() + INTERNALS.read_text()
    assert "callable(getattr(clip, name, None))" in source
    assert not re.search(r"comfyui_version|__version__|version_info", source)


# ------------------------------------------------------------------------------ core SAM3 Detect

SAM3 = sections("comfyui_sam3.txt")


def _stand_in_tree() -> ast.ClassDef:
    tree = ast.parse((REPO / "devkit" / "comfy_nodes" / "interop.py").read_text())
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TestOnlySAM3Detect")


def test_the_sam3_stand_in_builds_upstreams_boxes_token_for_token():
    (detect,) = [s for s in SAM3 if s.path == "comfy_extras/nodes_sam3.py"]
    assert detect.commit
    upstream_box = next(s for s in detect.statements if isinstance(s, ast.Expr)
                        and ast.unparse(s.value.func) == "frame_bbox_dicts.append")
    upstream_frame = next(s for s in detect.statements if isinstance(s, ast.Expr)
                          and ast.unparse(s.value.func) == "all_bbox_dicts.append")
    mine = [ast.dump(n) for n in ast.walk(_stand_in_tree()) if isinstance(n, ast.Expr)]
    assert ast.dump(upstream_box) in mine, "the box dict differs from upstream's expression"
    assert ast.dump(upstream_frame) in mine, "the boxes are not collected per image as upstream does"


def test_the_sam3_stand_in_has_upstreams_outputs():
    from devkit.comfy_nodes.interop import TestOnlySAM3Detect

    (detect,) = [s for s in SAM3 if s.path == "comfy_extras/nodes_sam3.py"]
    outputs = next(s for s in detect.statements if isinstance(s, ast.Assign) and s.targets[0].id == "outputs")
    kinds = [ast.unparse(o.func).split(".")[1] for o in outputs.value.elts]
    names = [o.args[0].value for o in outputs.value.elts]
    io_types = {"Mask": "MASK"}
    (bounding_box,) = [s for s in SAM3 if s.path == "comfy_api/latest/_io.py"]
    io_types["BoundingBox"] = bounding_box.statements[0].decorator_list[0].keywords[0].value.value
    assert tuple(io_types[k] for k in kinds) == TestOnlySAM3Detect.RETURN_TYPES == ("MASK", "BOUNDING_BOX")
    assert tuple(names) == TestOnlySAM3Detect.RETURN_NAMES


def test_the_sam3_stand_in_for_one_image_and_for_no_detections():
    from devkit.comfy_nodes.interop import TestOnlySAM3Detect

    image = torch.zeros(1, 60, 80, 3)
    masks, boxes = TestOnlySAM3Detect().detect(image, "[[[10, 5, 30.7, 25, 0.875], [40, 20, 70, 50, 0.51]]]")
    assert masks.shape == (1, 60, 80) and masks[0, 5:25, 10:30].all() and masks.sum() == 20 * 20 + 30 * 30
    assert boxes == [[{"x": 10.0, "y": 5.0, "width": float(torch.tensor(30.7) - 10), "height": 20.0, "score": 0.875},
                      {"x": 40.0, "y": 20.0, "width": 30.0, "height": 30.0,
                       "score": float(torch.tensor(0.51))}]]
    assert all(type(v) is float for box in boxes[0] for v in box.values())
    masks, boxes = TestOnlySAM3Detect().detect(image, "[[]]")
    assert boxes == [[]] and masks.shape == (1, 60, 80) and not masks.any()
