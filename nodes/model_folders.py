"""Model folders under ComfyUI/models, registered by appending so extra_model_paths.yaml keeps working."""

from __future__ import annotations

import os

# folder key -> sub-folders of ComfyUI/models that feed it
MODEL_FOLDERS = {
    "grounding-dino": ("grounding-dino", "groundingdino"),
    "bert-base-uncased": ("bert-base-uncased",),
    "sams": ("sams",),
    "LLM": ("LLM",),
}


def register_model_folders() -> None:
    try:
        import folder_paths
    except ImportError:  # imported outside ComfyUI (pytest imports the repository as a package)
        return

    for key, subfolders in MODEL_FOLDERS.items():
        for sub in subfolders:
            folder_paths.add_model_folder_path(key, os.path.join(folder_paths.models_dir, sub))


def folders(key: str) -> list[str]:
    import folder_paths

    try:
        return folder_paths.get_folder_paths(key)
    except KeyError:
        return [os.path.join(folder_paths.models_dir, sub) for sub in MODEL_FOLDERS[key]]


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
    for base in folders(key):
        if os.path.basename(os.path.normpath(base)) == name and os.path.isfile(os.path.join(base, "config.json")):
            return base
        path = os.path.normpath(os.path.join(base, name))
        if os.path.exists(path):
            return path
    return None
