"""Other packs' real source, for the tests that run CIELR beside them in one ComfyUI server.

Impact Pack (ltdrdata/ComfyUI-Impact-Pack, with the ComfyUI-Impact-Subpack it imports) and storyicon's
segment-anything nodes (storyicon/comfyui_segment_anything) are on GitHub only, not on PyPI, and CI
reaches PyPI only. So their source is never part of this repository; the tests find it in

    $CIELR_PACKS/<folder>          (default ~/.cache/cielr/packs/<folder>)

as a plain source tree, or lay it out there from a git snapshot of the repository found under
``$CIELR_SNAPSHOTS/<owner>+<name>/repo`` (the layout the development machines' snapshot tool uses).
Where neither is present, those tests report loudly that they did not run, and why; the stand-in
tests that build the same object types (segment_anything's Sam, the reference GroundingDINO, SEG
namedtuples) run everywhere.

The packs' requirements that this environment lacks are installed with ``pip --no-deps`` into
``$CIELR_PACKS/site`` (put on the server's PYTHONPATH), never into the venv: nothing installed changes,
no package the venv has is shadowed (checked), and the packs' pins (Impact asks for numpy<2) are not
applied.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from . import CACHE, SetupError

PACKS = Path(os.environ.get("CIELR_PACKS", CACHE / "packs"))
SNAPSHOTS = Path(os.environ.get("CIELR_SNAPSHOTS", "/work/.mirror"))
SITE = PACKS / "site"


@dataclass(frozen=True)
class Part:
    """A repository laid into a pack's folder (Impact imports its Subpack from ``impact_subpack``)."""

    repo: str
    into: str
    commit: str | None = None  # None: the snapshot's HEAD


@dataclass(frozen=True)
class ExternalPack:
    name: str
    repo: str
    folder: str
    # missing from this environment: (import name, PyPI name), installed with --no-deps into SITE
    requirements: tuple[tuple[str, str], ...] = ()
    parts: tuple[Part, ...] = field(default=())


IMPACT = ExternalPack(
    "Impact Pack", "ltdrdata/ComfyUI-Impact-Pack", "ComfyUI-Impact-Pack",
    requirements=(("skimage", "scikit-image"), ("lazy_loader", "lazy_loader"), ("piexif", "piexif"),
                  ("git", "GitPython"), ("gitdb", "gitdb"), ("smmap", "smmap"), ("dill", "dill"),
                  ("ultralytics", "ultralytics")),
    # the snapshot's Impact (2024-10, V7.10) imports impact.subpack_nodes from impact_subpack/: the Subpack of
    # that time (its later versions are a separate node pack with another layout)
    parts=(Part("ltdrdata/ComfyUI-Impact-Subpack", "impact_subpack", "bd4dedc"),),
)
STORYICON = ExternalPack("storyicon's segment anything", "storyicon/comfyui_segment_anything",
                         "comfyui_segment_anything")


def snapshot(repo: str) -> Path | None:
    git_dir = SNAPSHOTS / repo.replace("/", "+") / "repo"
    return git_dir if (git_dir / "HEAD").is_file() else None


def _lay(repo: str, commit: str | None, dest: Path) -> None:
    git_dir = snapshot(repo)
    if git_dir is None:
        raise SetupError(f"no snapshot of {repo} under {SNAPSHOTS}")
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit or "HEAD"],
                             capture_output=True, check=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def source(pack: ExternalPack) -> Path | None:
    """The pack's source tree, laid out from a snapshot on first use; None when neither exists."""
    folder = PACKS / pack.folder
    if (folder / "__init__.py").is_file() and (folder / ".cielr-laid").is_file():
        return folder
    if (folder / "__init__.py").is_file() and not pack.parts:
        return folder  # a checkout someone put there
    if snapshot(pack.repo) is None or any(snapshot(p.repo) is None for p in pack.parts):
        return None
    shutil.rmtree(folder, ignore_errors=True)
    _lay(pack.repo, None, folder)
    for part in pack.parts:
        _lay(part.repo, part.commit, folder / part.into)
    (folder / ".cielr-laid").write_text("laid from snapshots\n")
    return folder


def missing_text(pack: ExternalPack) -> str:
    return (f"NEEDS AN EXTERNAL CHECKOUT, NOT RUN: {pack.name} ({pack.repo}) is not on PyPI. Put its source at "
            f"{PACKS / pack.folder} (or set CIELR_PACKS), or a git snapshot at "
            f"{SNAPSHOTS / pack.repo.replace('/', '+') / 'repo'} (or set CIELR_SNAPSHOTS)"
            + "".join(f", plus {p.repo} at commit {p.commit} in {p.into}/" for p in pack.parts) + ".")


def site_for(packs: list[ExternalPack]) -> Path:
    """The folder with the packs' missing requirements (installed once, --no-deps, from PyPI)."""
    wanted = [(mod, dist) for pack in packs for mod, dist in pack.requirements]
    SITE.mkdir(parents=True, exist_ok=True)
    todo = []
    for module, dist in wanted:
        if (SITE / module).exists():
            continue
        if importlib.util.find_spec(module) is None:  # what the venv has is used as it is, never shadowed
            todo.append(dist)
    if todo:
        subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
                        "--target", str(SITE), *todo], check=True)
    return SITE


def link_into(base: Path, packs: list[ExternalPack]) -> dict[str, str]:
    """Link the packs into ``base``/custom_nodes; the environment the server needs for them."""
    custom = base / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    for pack in packs:
        folder = source(pack)
        if folder is None:
            raise SetupError(missing_text(pack))
        link = custom / pack.folder
        if not link.exists():
            link.symlink_to(folder, target_is_directory=True)
    site = site_for(packs)
    return {"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site)) if p)}
