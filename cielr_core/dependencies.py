"""Are the packages in requirements.txt installed? Checked when ComfyUI imports the pack.

A pack that cannot import should say so where ComfyUI users look: ComfyUI logs the exception an
import raises ("Cannot import ... module for custom nodes: <message>") and marks the pack
"(IMPORT FAILED)", which ComfyUI-Manager shows too. So a missing or too old requirement raises
one ImportError naming every such package and the command that installs them, before anything
heavy is imported.

Standard library only: this runs before the requirements it checks. Installed versions are read
from package metadata, so nothing is imported to check it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import MissingRequirementsError

_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*?)\s*(?:;\s*([^#]*?))?\s*(?:#.*)?$")


@dataclass(frozen=True)
class Requirement:
    name: str
    specifier: str  # ">=1.0", or "" for any version
    marker: str  # 'python_version < "3.11"', or "" for always


def read_requirements(path: str | Path) -> list[Requirement]:
    """The plain ``name[extras] specifier ; marker`` lines of a requirements file (options skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "-")):
            continue
        m = _LINE.match(line)
        if m:
            out.append(Requirement(m.group(1), m.group(3).replace(" ", ""), (m.group(4) or "").strip()))
    return out


def unmet(requirements: list[Requirement]) -> list[str]:
    """Each requirement this Python does not satisfy, as "name>=x (why)"."""
    try:  # packaging comes with pip, torch and transformers; without it only presence is checked
        from packaging.markers import Marker
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:
        Marker = SpecifierSet = Version = None
        InvalidVersion = ValueError
    problems = []
    for req in requirements:
        if req.marker and (Marker is None or not Marker(req.marker).evaluate()):
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name}{req.specifier} (not installed)")
            continue
        if req.specifier and SpecifierSet is not None:
            try:
                ok = SpecifierSet(req.specifier).contains(Version(installed), prereleases=True)
            except InvalidVersion:  # a local build with an unparsable version: trust it
                ok = True
            if not ok:
                problems.append(f"{req.name}{req.specifier} ({installed} installed)")
    return problems


def check_requirements(path: str | Path) -> None:
    """Raise MissingRequirementsError naming every unmet requirement of ``path``."""
    problems = unmet(read_requirements(path))
    if problems:
        raise MissingRequirementsError(problems, f'"{sys.executable}" -m pip install -r "{path}"')
