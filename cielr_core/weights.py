"""Safe checkpoint loading. Model files are untrusted: no pickle ever runs code here.

``.safetensors`` load with safetensors; ``.pth``/``.pt``/``.bin`` load with
``torch.load(weights_only=True)``, which refuses any pickle that would build arbitrary objects.
Every failure becomes a ``CheckpointError`` naming the file and what was expected.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import CheckpointError


def load_checkpoint(path: str | Path, expected: str) -> Any:
    """Load a checkpoint container (a state dict, or a dict holding one) without running code."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "the file does not exist", expected)
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty", expected)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(path, unsafe_pickle(e), expected) from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(path, f"the file is truncated or not a checkpoint ({_first_line(e)})",
                              expected) from None
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(path, f"unreadable ({type(e).__name__}: {_first_line(e)})", expected) from None


def state_dict_of(obj: Any, path: str | Path, expected: str,
                  wrappers: Iterable[str] = ("model", "state_dict", "module")) -> dict[str, Any]:
    """Unwrap ``{"model": sd}``-style containers and check the result maps names to tensors."""
    import torch

    for _ in range(3):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in wrappers if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(path, f"it holds a {type(obj).__name__}, not a state dict", expected)
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(path, "it holds no tensors", expected)
    return dict(tensors)


def strip_prefix(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Remove a prefix such as ``module.`` (left by DataParallel) from every key that has it."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in sd.items()}


def unsafe_pickle(e: BaseException) -> str:
    """The problem text for a pickle that ``weights_only`` loading refused (here or inside a library)."""
    text = str(e).splitlines()
    what = next((line.strip() for line in text if "GLOBAL" in line), None) or _first_line(e)
    return (f"refused to unpickle it: it holds Python objects, not only tensors ({what[:300]}); "
            "a checkpoint that needs code to load is unsafe and is never run")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def read_json_object(path: Path, owner: str | Path, expected: str) -> dict[str, Any]:
    """A JSON object from a config file that describes the checkpoint ``owner`` (maybe itself)."""
    import json

    what = "it" if Path(owner) == Path(path) else f"its config {Path(path).name}"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(owner, f"{what} is not valid JSON ({e})", expected) from None
    if not isinstance(data, dict):
        raise CheckpointError(owner, f"{what} must hold a JSON object, not a {type(data).__name__}", expected)
    return data
