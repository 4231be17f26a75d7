"""Sampling previews never fail an edit: newer cores hand sampler callbacks nested latents (packed multi-latent
models), which 0.3.75's previewer cannot decode. Run with ComfyUI 0.3.75's own previewer, in a subprocess
(ComfyUI's modules are imported from its folder, as the server does)."""

from __future__ import annotations

import subprocess
import sys

from devkit import COMFYUI
from tests.conftest import REPO

SCRIPT = r"""
import sys
repo, comfy_dir = sys.argv[1], sys.argv[2]
sys.path[:0] = [repo]
sys.path.append(comfy_dir)  # after the repo: the pack's "nodes" package wins over ComfyUI's nodes.py
from types import SimpleNamespace

import torch
import comfy.options
import comfy.cli_args
comfy.cli_args.args.cpu = True
comfy.cli_args.args.preview_method = comfy.cli_args.LatentPreviewMethod.Latent2RGB  # as --preview-method latent2rgb
import comfy.latent_formats
import comfy.utils
from nodes.comfy_engine import StepPreview

shown = []
comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: shown.append(preview))
sd15 = SimpleNamespace(latent_format=comfy.latent_formats.SD15())
model = SimpleNamespace(load_device=torch.device("cpu"), model=sd15)
preview = StepPreview(model, total_steps=3)
assert preview.previewer is not None, "0.3.75 gives SD1.5 a latent2rgb previewer"
preview.callback(0, torch.zeros(1, 4, 8, 8), None, 3)
assert shown[-1] is not None, "a plain latent gives a preview"
import comfy.nested_tensor
# what a newer core hands a callback for packed latents (its CFGGuider.sample): must not raise
nested = comfy.nested_tensor.NestedTensor([torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4)])
preview.callback(1, nested, None, 3)
assert preview.previewer is None and shown[-1] is None and len(shown) == 2
preview.callback(2, torch.zeros(1, 4, 8, 8), None, 3)  # sampling goes on, without previews
assert len(shown) == 3
print("ok")
"""


def test_a_preview_that_cannot_be_decoded_turns_previews_off():
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO), str(COMFYUI)], cwd=COMFYUI, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-2000:] + done.stderr[-4000:]
