"""Errors a user can act on. Each message says what went wrong and what to do."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path


class CIELRError(Exception):
    """Base class: every error the pack raises on purpose."""


class InputError(CIELRError, ValueError):
    """An image, mask, label list or file the user gave cannot be used as it is."""


class ModelNotFoundError(CIELRError, FileNotFoundError):
    """A model file is missing. The message lists every folder searched."""

    def __init__(self, what: str, names: Iterable[str], folders: Iterable[str | Path], source: str):
        self.names = list(names)
        self.folders = [str(f) for f in folders]
        searched = "\n".join(f"  - {f}" for f in self.folders) or "  (no folder is registered)"
        super().__init__(
            f"{what} not found. Expected one of: {', '.join(self.names)}.\n"
            f"Folders searched:\n{searched}\n"
            f"Download it from {source} and put it in one of those folders."
        )


class CheckpointError(CIELRError):
    """A model file exists but is not what it should be (truncated, wrong kind, unsafe)."""

    def __init__(self, path: str | Path, problem: str, expected: str):
        self.path = str(path)
        super().__init__(f"Cannot load {self.path}: {problem}. Expected {expected}.")


class MissingDependencyError(CIELRError, ImportError):
    """An optional Python package a feature needs is not installed. The message names its optional
    group, when it has one, and the command that installs it into the Python running this code."""

    def __init__(self, package: str, purpose: str, group=None):
        # group: a dependencies.OptionalGroup (name, adds, install); that module stands above this one
        self.package = package
        self.group = group
        if group is None:
            install = f'"{sys.executable}" -m pip install {package}'
            where = ""
        else:
            install = group.install
            where = f" It belongs to CIELR's optional group '{group.name}' ({group.adds})."
        super().__init__(
            f"The Python package '{package}' is needed for {purpose} but is not installed.{where} "
            f"Install it with this Python (the one running ComfyUI, for the nodes): {install}   "
            "(then restart ComfyUI)"
        )


class MissingRequirementsError(CIELRError, ImportError):
    """Packages the pack cannot run without are missing or too old: it registers no node."""

    def __init__(self, problems: list[str], install: str):
        self.problems = list(problems)
        super().__init__(
            f"CIELR needs Python packages that this ComfyUI's Python lacks: {', '.join(self.problems)}. "
            f"Install them with: {install}   (then restart ComfyUI)"
        )
