"""Conversions between ComfyUI's types and the library's, plus progress and cancel hooks."""

from __future__ import annotations

import numpy as np
import torch

from cielr_core.errors import InputError
from cielr_core.progress import Progress


def single_image(image: torch.Tensor, node: str) -> np.ndarray:
    """IMAGE [B, H, W, C] float -> one H x W x C float array (a copy, so the input stays untouched)."""
    if image.ndim != 4:
        raise InputError(f"{node}: expected an IMAGE of shape [batch, height, width, channels], "
                         f"got {tuple(image.shape)}")
    if image.shape[0] != 1:
        raise InputError(f"{node} works on one image at a time, but got a batch of {image.shape[0]}. "
                         "Pick one with ComfyUI's 'Image From Batch' node, or run the graph once per image.")
    return image[0].detach().to("cpu", torch.float32).numpy().copy()


def to_image(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> IMAGE [1, H, W, 3] float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(torch.float32).div(255.0).unsqueeze(0)


def comfy_progress() -> Progress:
    """A Progress that drives the node's progress bar and stops when the user presses cancel."""
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(1)
    return Progress(on_advance=lambda done, total: bar.update_absolute(done, total),
                    on_check=comfy.model_management.throw_exception_if_processing_interrupted)


def ui_images(rgb: np.ndarray, prefix: str = "cielr_preview") -> dict:
    """Save a preview to ComfyUI's temp folder so the node shows it on the canvas."""
    import os
    import uuid

    import folder_paths
    from PIL import Image

    name = f"{prefix}_{uuid.uuid4().hex[:12]}.png"
    Image.fromarray(rgb).save(os.path.join(folder_paths.get_temp_directory(), name), compress_level=1)
    return {"images": [{"filename": name, "subfolder": "", "type": "temp"}]}
