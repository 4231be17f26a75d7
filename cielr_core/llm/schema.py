"""Answer schemas for constrained decoding.

Every answer type derives from ``Answer`` (unknown keys are an error) and bounds every string
(max_length), number (ge/le) and list (max_length): a weak model under constrained decoding
otherwise rambles until max tokens. ``strict_schema`` turns such a model into the JSON schema the
backends send, and refuses a model with an unbounded field so the mistake shows at once.
"""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

# An object name to detect. No stripping here: validation must accept exactly what the grammar
# allows, or a constrained answer could still fail; callers tidy labels after validation.
Label = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class Answer(BaseModel):
    """Base of every answer type: extra keys are rejected (schema: additionalProperties false)."""

    model_config = ConfigDict(extra="forbid")


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, self-contained and strict, for structured output and grammars.

    $refs are inlined (some servers' grammar converters do not follow them), every object gets
    ``additionalProperties: false`` and lists all its properties as required (OpenAI strict mode
    requires both), and titles are dropped to keep the prompt short.
    """
    raw = model.model_json_schema()
    schema = _strictify(_inline_refs(raw, raw.get("$defs", {}), depth=0))
    problems = unbounded_fields(schema)
    if problems:
        raise ValueError(f"{model.__name__} has unbounded fields (add max_length / ge+le / max_length "
                         f"on lists): {', '.join(problems)}")
    return schema


def schema_text(model: type[BaseModel]) -> str:
    """The strict schema as compact JSON, for prompts to models whose output is not constrained."""
    return json.dumps(strict_schema(model), separators=(",", ":"))


_LOWER = {"minimum", "exclusiveMinimum"}
_UPPER = {"maximum", "exclusiveMaximum"}


def unbounded_fields(schema: dict[str, Any], path: str = "$") -> list[str]:
    """Paths of strings without maxLength, numbers without both bounds, lists without maxItems."""
    if "enum" in schema or "const" in schema:
        return []
    found: list[str] = []
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found += unbounded_fields(branch, path)
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema:
        found.append(path)
    elif kind in ("integer", "number") and not (_LOWER & schema.keys() and _UPPER & schema.keys()):
        found.append(path)
    elif kind == "array":
        if "maxItems" not in schema:
            found.append(path)
        if isinstance(schema.get("items"), dict):
            found += unbounded_fields(schema["items"], f"{path}[]")
    elif kind == "object":
        if schema.get("additionalProperties") not in (False, None):
            found.append(f"{path} (additionalProperties)")
        for name, sub in schema.get("properties", {}).items():
            found += unbounded_fields(sub, f"{path}.{name}")
    return found


def _inline_refs(node: Any, defs: dict[str, Any], depth: int) -> Any:
    if depth > 32:
        raise ValueError("answer schemas must not be recursive")
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].split("/")[-1]]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline_refs(copy.deepcopy(merged), defs, depth + 1)
        return {k: _inline_refs(v, defs, depth) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs, depth) for v in node]
    return node


def _strictify(node: Any) -> Any:
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strictify(v) for k, v in node.items() if k != "title"}
    if "properties" in node:
        # Property names may be anything, including "title": handle them apart from keywords.
        out["properties"] = {name: _strictify(sub) for name, sub in node["properties"].items()}
    if out.get("type") == "object":
        # A free-form map (additionalProperties: {schema}) stays as it is; unbounded_fields flags it.
        if not isinstance(out.get("additionalProperties"), dict):
            out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    return out
