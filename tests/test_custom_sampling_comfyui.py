"""CIELR Inpaint Actions with the user's own SAMPLER, SIGMAS and GUIDER, in a real ComfyUI server.

"The same" sampling: KSampler is a CFGGuider over ``sampler_object(name)`` and the scheduler's sigmas, so
KSamplerSelect + BasicScheduler of the same names and CFGGuider of the same cfg must give the built-in
path's pixels exactly (compared as float32 arrays). For an action with denoise < 1, KSampler samples
``steps`` steps of a schedule of ``int(steps / denoise)``; the connected SIGMAS are the full schedule and
are cut to their last ``round(n x denoise)`` steps (SplitSigmasDenoise), so a BasicScheduler of
``steps / denoise`` steps gives the same sigmas. The noise mask goes to the guider as SamplerCustomAdvanced
passes a latent's noise mask (``denoise_mask``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from devkit.comfyui import describe, execution_error
from tests.test_editing_comfyui import _gdino, edit_prompt, editing_server  # noqa: F401, F811  (the module's server)

pytestmark = pytest.mark.slow

RECOLOR = {"actions": [{"op": "recolor", "targets": [1], "prompt": "a red sofa", "strength": 0.5}]}


def graph(server, checkpoint: str, custom: dict, plan: dict | None = None) -> dict:
    prompt = edit_prompt(_gdino(server), checkpoint)
    for key in [k for k in prompt if k.isdigit() and int(k) >= 20]:
        del prompt[key]  # keep the edit; the tensors are compared exactly below
    if plan is not None:
        prompt["6"]["inputs"]["plan_json"] = json.dumps(plan)
    extra = {"unused_pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 1], "text": "unused words"}},
             "unused_neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 1], "text": "other words"}},
             "select": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "sched": {"class_type": "BasicScheduler",
                       "inputs": {"model": ["10", 0], "scheduler": "normal", "steps": custom.get("sigma_steps", 2),
                                  "denoise": 1.0}},
             "cfg": {"class_type": "CFGGuider", "inputs": {"model": ["10", 0], "positive": ["unused_pos", 0],
                                                           "negative": ["unused_neg", 0], "cfg": 5.0}}}
    links = {"sampler": ["select", 0], "sigmas": ["sched", 0], "guider": ["cfg", 0]}
    for name in custom.get("use", ()):
        prompt["11"]["inputs"][name] = links[name]
    prompt.update({k: v for k, v in extra.items()})
    prompt["report"] = {"class_type": "PreviewAny", "inputs": {"source": ["11", 3]}}
    prompt["image"] = {"class_type": "TestOnlySaveTensor", "inputs": {"name": "edit", "image": ["11", 0]}}
    prompt["mask"] = {"class_type": "TestOnlySaveTensor", "inputs": {"name": "mask", "mask": ["11", 1]}}
    prompt["photo"] = {"class_type": "TestOnlySaveTensor", "inputs": {"name": "photo", "image": ["1", 0]}}
    return prompt


def edit(server, checkpoint: str, plan: dict | None = None, **custom) -> tuple[np.ndarray, np.ndarray, str]:
    entry = server.run(graph(server, checkpoint, custom, plan), timeout=900)
    assert execution_error(entry) is None, describe(execution_error(entry))
    out = entry["outputs"]
    image, mask, photo = (np.load(server.base / "output" / out[n]["tensors"][0]) for n in ("image", "mask", "photo"))
    changed = (image != photo).any(axis=-1)[0]
    assert changed.any() and not (changed & (mask[0] == 0)).any(), "pixels changed outside the MASK output"
    return image, mask, out["report"]["text"][0]


@pytest.fixture(scope="module")
def built_in(editing_server, sd15_models) -> tuple[np.ndarray, np.ndarray]:
    image, mask, _ = edit(editing_server, sd15_models.checkpoint.name)
    return image, mask


@pytest.mark.parametrize("use", [("sampler", "sigmas"), ("guider",), ("sampler", "sigmas", "guider")])
def test_custom_sampling_equals_the_built_in_path(editing_server, sd15_models, built_in, use):
    built_in, mask = built_in
    custom, custom_mask, report = edit(editing_server, sd15_models.checkpoint.name, use=use)
    assert np.array_equal(custom, built_in) and np.array_equal(custom_mask, mask)
    assert "custom sampling:" in report
    if "guider" in use:
        assert "guider CFGGuider (its cfg; positive/negative per action)" in report


def test_a_guider_keeps_the_inpainting_models_conditioning(editing_server, sd15_models):
    """With a 9-channel inpainting checkpoint the concat conditioning (masked crop + mask) still reaches the
    model through the user's guider: the same pixels as the built-in path."""
    name = sd15_models.inpainting.name
    built_in, _, report = edit(editing_server, name)
    assert "inpaint" in report
    custom, _, _ = edit(editing_server, name, use=("guider",))
    assert np.array_equal(custom, built_in)


def test_sigmas_are_cut_for_an_actions_denoise(editing_server, sd15_models):
    """A recolor at strength 0.5 with steps 2 samples KSampler's last 2 of 4 steps; BasicScheduler with 4 steps,
    cut to round(4 x 0.5) = 2 steps, is the same schedule. (An action at denoise 1 would sample all 4 of them.)"""
    built_in, _, _ = edit(editing_server, sd15_models.checkpoint.name, RECOLOR)
    custom, _, report = edit(editing_server, sd15_models.checkpoint.name, RECOLOR, use=("sampler", "sigmas"),
                             sigma_steps=4)
    assert np.array_equal(custom, built_in)
    assert "sigmas 4 steps" in report and "cut per action's denoise" in report


def test_a_guider_of_another_model_is_refused(editing_server, sd15_models):
    prompt = graph(editing_server, sd15_models.checkpoint.name, {"use": ("guider",)})
    prompt["other"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sd15_models.inpainting.name}}
    prompt["cfg"]["inputs"]["model"] = ["other", 0]
    error = execution_error(editing_server.run(prompt, timeout=900))
    assert error is not None and error["node_type"] == "CIELRInpaintActions"
    assert "the GUIDER was made for another diffusion model" in error["exception_message"], describe(error)
