"""The pack's requirements in tiers: the core every node needs, and optional groups.

The core (requirements.txt) is checked when ComfyUI imports the pack. A pack that cannot import
should say so where ComfyUI users look: ComfyUI logs the exception an import raises ("Cannot import
... module for custom nodes: <message>") and marks the pack "(IMPORT FAILED)", which ComfyUI-Manager
shows too. So a missing or too old core requirement raises one ImportError naming every such package
and the command that installs them, before anything heavy is imported.

An optional group (its own requirements file, and a pyproject extra of the same name) costs only the
feature that needs it: every node registers without it, and the feature says, when it runs, which
group to install and the exact command for the Python that runs it.

Standard library only: this runs before the requirements it checks. Installed versions are read
from package metadata, so nothing is imported to check it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import MissingDependencyError, MissingRequirementsError

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "requirements.txt"


@dataclass(frozen=True)
class OptionalGroup:
    name: str  # the pyproject extra
    requirements: Path  # its requirements file
    adds: str  # what it adds, in a user's words

    @property
    def install(self) -> str:
        """The command that installs the group into this Python (the one running ComfyUI)."""
        return f'"{sys.executable}" -m pip install -r "{self.requirements}"'

    def packages(self) -> list[str]:
        return [r.name for r in read_requirements(self.requirements)]


OPTIONAL_GROUPS = (
    OptionalGroup("local-llm", ROOT / "requirements-local-llm.txt",
                  "local LLMs on transformers: Hugging Face model folders with JSON-schema constrained decoding, "
                  "and .gguf files where llama-cpp-python is not installed"),
    OptionalGroup("diffusers", ROOT / "requirements-diffusers.txt",
                  "the command line's diffusers inpainting engine: python -m cielr_core edit --inpaint"),
    OptionalGroup("ray", ROOT / "requirements-ray.txt",
                  "bench and batch edits on a Ray cluster: python -m cielr_core bench|batch --ray auto"),
)


def group_named(name: str) -> OptionalGroup:
    return next(g for g in OPTIONAL_GROUPS if g.name == name)


def optional_group(package: str) -> OptionalGroup | None:
    """The optional group that lists ``package`` (a distribution name), or None."""
    wanted = _canonical(package)
    return next((g for g in OPTIONAL_GROUPS if wanted in map(_canonical, g.packages())), None)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

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


def check_requirements(path: str | Path = CORE) -> None:
    """Raise MissingRequirementsError naming every unmet requirement of ``path`` (the core)."""
    problems = unmet(read_requirements(path))
    if problems:
        raise MissingRequirementsError(problems, f'"{sys.executable}" -m pip install -r "{path}"')


def require(module: str, package: str, purpose: str):
    """Import an optional dependency, or say which package (and optional group) to install for what."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, purpose, optional_group(package)) from None
