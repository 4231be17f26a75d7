"""Model folders under ComfyUI/models, registered by appending so extra_model_paths.yaml keeps working."""

from __future__ import annotations

import os

from cielr_core.model_folders import MODEL_FOLDERS, find_in_folders, subfolders

from . import comfy_internals as comfy


def register_model_folders() -> None:
    if not comfy.comfy_available():  # imported outside ComfyUI (pytest imports the repository as a package)
        return
    for key in MODEL_FOLDERS:
        for path in subfolders(comfy.models_dir(), key):
            comfy.add_model_folder(key, str(path))


def folders(key: str) -> list[str]:
    found = comfy.model_folder_paths(key)
    return found if found is not None else [str(p) for p in subfolders(comfy.models_dir(), key)]


def model_choices(key: str, suffixes: tuple[str, ...], defaults: list[str], dirs: bool = False) -> list[str]:
    """Files (and, with ``dirs``, HF folders holding config.json) found in the folders of ``key``.

    When nothing is installed the official names are offered anyway, so a loaded workflow keeps its
    value and running it gives an error that says where to put the file.
    """
    found: list[str] = []
    for base in folders(key):
        if not os.path.isdir(base):
            continue
        if dirs and os.path.isfile(os.path.join(base, "config.json")):
            found.append(os.path.basename(os.path.normpath(base)))  # models/bert-base-uncased itself
            continue
        for root, subdirs, files in os.walk(base, followlinks=True):
            rel = os.path.relpath(root, base)
            if dirs and rel != "." and "config.json" in files:
                found.append(rel.replace(os.sep, "/"))
                subdirs[:] = []  # an HF folder's own sub-folders are not models
                continue
            found += [os.path.normpath(os.path.join(rel, f)).replace(os.sep, "/")
                      for f in files if f.lower().endswith(suffixes)]
    return sorted(set(found)) or list(defaults)


def resolve(key: str, name: str) -> str | None:
    found = find_in_folders(folders(key), [name])
    return None if found is None else str(found)
