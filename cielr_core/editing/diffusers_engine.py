"""The diffusers engine, for the library and the command line: an SD inpainting pipeline from a local
folder (diffusers format) or one checkpoint file plus a local config folder. Never downloads.

Inpainting checkpoints (UNet with 9 input channels) get the masked image as extra input; ordinary
checkpoints (4 channels) are handled by the same pipeline with a latent noise mask.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, InputError, ModelNotFoundError
from ..dependencies import require
from ..progress import NO_PROGRESS, Progress
from ..settings import SAMPLING_SEED_MAX
from ..weights import unsafe_pickle
from .engine import InpaintRequest, SamplerSettings

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def load_inpaint_pipeline(path: str | os.PathLike, config: str | os.PathLike | None = None,
                          device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """A ``StableDiffusionInpaintPipeline`` from a diffusers folder, or a single file with ``config``
    (a local folder in diffusers layout holding the pipeline's config JSONs and tokenizer)."""
    pipeline_class = require("diffusers", "diffusers", "the diffusers inpainting engine").StableDiffusionInpaintPipeline
    path = Path(path)
    common: dict[str, Any] = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False,
                              "local_files_only": True}
    if dtype != torch.float32:  # the default; newer diffusers renamed the argument, so pass it only when needed
        common["torch_dtype"] = dtype
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointError(path, "the folder has no model_index.json",
                                  "a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, ...)")
        with _refusing_pickles(path, "a diffusers pipeline folder with .safetensors weights"):
            pipe = pipeline_class.from_pretrained(path, **common)
    elif path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise CheckpointError(path, f"unknown file type {path.suffix!r}", "a .safetensors or .ckpt checkpoint")
        if config is None or not Path(config).is_dir():
            raise InputError(f"loading the single file {path} offline needs a local config folder "
                             "(diffusers layout: model_index.json, unet/config.json, tokenizer/, ...); pass config=")
        with _refusing_pickles(path, "a .safetensors or .ckpt checkpoint holding only tensors"):
            pipe = pipeline_class.from_single_file(str(path), config=str(config), **common)
    else:
        raise ModelNotFoundError("Inpainting pipeline", [path.name], [path.parent], "your diffusers model folder")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@contextlib.contextmanager
def _refusing_pickles(path: Path, expected: str):
    """diffusers reads pickled weights with weights_only=True and wraps a refusal in an OSError; either
    way a refused pickle, and any other unreadable file, becomes a CheckpointError naming ``path``."""
    try:
        yield
    except (pickle.UnpicklingError, OSError, ValueError) as e:
        cause: BaseException | None = e
        for _ in range(10):  # the exception chain, not looping forever on a cyclic one
            if cause is None or isinstance(cause, pickle.UnpicklingError):
                break
            cause = cause.__cause__ or cause.__context__
        if not isinstance(cause, pickle.UnpicklingError):
            cause = None
        if cause is not None:
            problem = unsafe_pickle(cause) if path.is_file() else f"a weights file in it was {unsafe_pickle(cause)}"
        else:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            problem = f"diffusers could not load it ({first[:300]})"
        raise CheckpointError(path, problem, expected) from None


class DiffusersEngine:
    """``InpaintEngine`` over a diffusers inpainting pipeline."""

    working_size = 512  # the SD1.5 and SD2 inpainting models it loads were trained at 512

    def __init__(self, pipe: Any, settings: SamplerSettings = SamplerSettings(), progress: Progress = NO_PROGRESS):
        self.pipe = pipe
        self.settings = settings
        self.progress = progress
        self.multiple = int(getattr(pipe, "vae_scale_factor", 8))
        self.calls = 0

    @classmethod
    def from_path(cls, path: str | os.PathLike, config: str | os.PathLike | None = None,
                  settings: SamplerSettings = SamplerSettings(), device: str = "cpu") -> DiffusersEngine:
        return cls(load_inpaint_pipeline(path, config, device=device), settings)

    def _steps(self, denoise: float) -> int:
        # diffusers runs int(steps * strength) steps and refuses zero
        return max(self.settings.steps, math.ceil(1.0 / denoise))

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        h, w = request.image.shape[:2]
        if request.denoise <= 0:
            return request.image.astype(np.float32, copy=True)
        self.calls += 1
        image = torch.from_numpy(np.ascontiguousarray(request.image)).permute(2, 0, 1)[None]
        mask = torch.from_numpy(np.ascontiguousarray(request.mask))[None, None]
        generator = torch.Generator(device="cpu").manual_seed(int(request.seed) & SAMPLING_SEED_MAX)

        def on_step(pipe, step, timestep, kwargs):
            self.progress.check()  # cancel between sampling steps
            return kwargs

        out = self.pipe(prompt=request.prompt, negative_prompt=request.negative or None, image=image,
                        mask_image=mask, height=h, width=w, strength=float(request.denoise),
                        num_inference_steps=self._steps(request.denoise), guidance_scale=self.settings.cfg,
                        generator=generator, output_type="np", callback_on_step_end=on_step).images
        return np.clip(np.asarray(out[0], dtype=np.float32), 0.0, 1.0)
