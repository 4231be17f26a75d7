"""Where model files live: the sub-folders of a ComfyUI models folder, and the one lookup of a name in them.

The node pack registers ``MODEL_FOLDERS`` with ComfyUI (extra_model_paths.yaml adds more folders
there); the command line searches the same sub-folders of ``--models-dir``. Needs nothing but the
standard library, so ``--help`` and ComfyUI's start stay light.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

# folder key -> sub-folders of ComfyUI/models that feed it (the keys the nodes register)
MODEL_FOLDERS = {
    "grounding-dino": ("grounding-dino", "groundingdino"),
    "bert-base-uncased": ("bert-base-uncased",),
    "sams": ("sams",),
    "LLM": ("LLM",),
}
# The command line's inpainting model; in ComfyUI the checkpoint loaders of ComfyUI itself find it.
INPAINT_FOLDERS = ("diffusers", "checkpoints", "inpaint")


def subfolders(models_dir: str | Path, key: str) -> list[Path]:
    """The folders of ``key`` ("inpaint" or a key of ``MODEL_FOLDERS``) under a models folder."""
    subs = INPAINT_FOLDERS if key == "inpaint" else MODEL_FOLDERS[key]
    return [Path(os.path.expanduser(models_dir)) / sub for sub in subs]


def find_in_folders(folders: Iterable[str | Path], names: Sequence[str],
                    folder_ok: bool = True) -> Path | None:
    """The first of ``names`` that exists in ``folders`` (searched in order), or None.

    With ``folder_ok`` a folder that is itself named one of ``names`` and holds config.json is the
    model (models/bert-base-uncased is the text encoder's Hugging Face folder).
    """
    for folder in map(Path, folders):
        if folder_ok and folder.name in names and (folder / "config.json").is_file():
            return folder
        for name in names:
            candidate = Path(os.path.normpath(folder / name))
            if candidate.exists():
                return candidate
    return None
