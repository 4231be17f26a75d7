"""Running plans: the diffusers engine with a tiny random inpainting pipeline on real photos, plus
plan semantics (order, seeds, op defaults, skipped actions, errors before sampling) with fakes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cielr_core.editing import (
    EditSettings,
    InpaintEngine,
    InpaintRequest,
    execute_plan,
    grown_mask,
)
from cielr_core.errors import InputError
from cielr_core.plan import Plan, PlanError
from cielr_core.progress import Progress
from cielr_core.scene import make_object
from cielr_core.scene.model import Scene
from cielr_core.settings import BACKGROUND_PROMPT
from tests.conftest import CIEBENCH, load_photo

SMALL = {"working_size": 64, "grow": 4, "feather": 4, "context": 16}


class Recorder:
    """Fills the mask with one flat colour per call and records every request."""

    multiple = 8

    def __init__(self, colours=((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0))):
        self.colours = colours
        self.requests: list[InpaintRequest] = []

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        self.requests.append(request)
        out = np.empty_like(request.image)
        out[:] = np.asarray(self.colours[(len(self.requests) - 1) % len(self.colours)], np.float32)
        return out


def _plan(*actions: dict) -> Plan:
    return Plan.model_validate({"actions": list(actions)})


@pytest.fixture(scope="module")
def photo_scene() -> tuple[np.ndarray, Scene]:
    """Photo 0 of the benchmark with its real object mask as #1 and a box region as #2."""
    photo = load_photo(0)
    h, w = photo.shape[:2]
    target = np.asarray(Image.open(CIEBENCH / "0" / "0_mask.png").convert("L")) > 127
    box = np.zeros((h, w), bool)
    box[40:120, 60:200] = True
    ys, xs = np.nonzero(target)
    objects = [make_object(1, "speaker", 0.9, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), target),
               make_object(2, "picture", 0.8, (60, 40, 200, 120), box)]
    return photo, Scene(w, h, objects)


@pytest.fixture(scope="module")
def engine(tiny_inpaint_pipeline_dir):
    from cielr_core.editing.diffusers_engine import DiffusersEngine
    from cielr_core.editing.engine import SamplerSettings

    return DiffusersEngine.from_path(tiny_inpaint_pipeline_dir, settings=SamplerSettings(steps=2, cfg=5.0))


TWO_ACTIONS = ({"op": "replace", "targets": [1], "prompt": "a floor lamp"},
               {"op": "recolor", "targets": [2], "prompt": "a red picture"})


def test_engine_satisfies_the_interface(engine):
    assert isinstance(engine, InpaintEngine) and engine.multiple == 8


def test_diffusers_two_actions_on_a_real_photo(engine, photo_scene):
    photo, scene = photo_scene
    before = photo.copy()
    result = execute_plan(photo, scene, _plan(*TWO_ACTIONS), engine, EditSettings(seed=7, **SMALL))
    assert np.array_equal(photo, before)
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    outside = result.mask == 0
    assert np.array_equal(result.image[outside], photo[outside])
    changed = (result.image != photo).any(axis=-1)
    assert changed.sum() > 1000 and not (changed & outside).any()
    assert [r.seed for r in result.reports] == [7, 8] and not any(r.skipped for r in result.reports)
    assert [r.denoise for r in result.reports] == [1.0, 0.6]
    assert len(result.previews) == 2
    assert "action 2 (recolor)" in result.report
    again = execute_plan(photo, scene, _plan(*TWO_ACTIONS), engine, EditSettings(seed=7, **SMALL))
    assert np.array_equal(again.image, result.image)  # seeded: repeatable
    other = execute_plan(photo, scene, _plan(*TWO_ACTIONS), engine, EditSettings(seed=8, **SMALL))
    assert not np.array_equal(other.image, result.image)


def test_diffusers_float_image_keeps_its_bits(engine, photo_scene):
    photo, scene = photo_scene
    image = photo.astype(np.float32) / np.float32(255)
    plan = _plan({"op": "remove", "targets": [2]})
    result = execute_plan(image, scene, plan, engine, EditSettings(**SMALL))
    assert result.image.dtype == np.float32
    outside = result.mask == 0
    assert np.array_equal(result.image[outside].view(np.uint32), image[outside].view(np.uint32))
    assert np.array_equal(result.mask > 0, grown_mask(scene.get(2).mask, EditSettings(**SMALL)))


def test_low_denoise_runs_at_least_one_step(engine, photo_scene):
    photo, scene = photo_scene
    plan = _plan({"op": "recolor", "targets": [2], "prompt": "blue", "strength": 0.2})  # 2 steps x 0.2 < 1
    result = execute_plan(photo, scene, plan, engine, EditSettings(**SMALL))
    assert result.reports[0].denoise == 0.2 and not result.reports[0].skipped


def test_unknown_ids_fail_before_any_sampling(engine, photo_scene):
    photo, scene = photo_scene
    calls = engine.calls
    plan = _plan({"op": "replace", "targets": [1], "prompt": "x"}, {"op": "remove", "targets": [42]})
    with pytest.raises(PlanError, match=r"\[42\] that are not in the scene"):
        execute_plan(photo, scene, plan, engine, EditSettings(**SMALL))
    assert engine.calls == calls  # the first, valid action did not run either


def test_empty_mask_is_skipped_and_reported(photo_scene):
    photo, scene = photo_scene
    empty = make_object(3, "ghost", 0.5, (0, 0, 1, 1), np.zeros(photo.shape[:2], bool))
    scene = Scene(scene.width, scene.height, scene.objects + [empty])
    rec = Recorder()
    result = execute_plan(photo, scene, _plan({"op": "remove", "targets": [3]}), rec, EditSettings(**SMALL))
    assert np.array_equal(result.image, photo) and not result.mask.any() and rec.requests == []
    assert result.reports[0].skipped and "empty" in result.report
    result = execute_plan(photo, scene, _plan({"op": "remove", "targets": [3]}, TWO_ACTIONS[0]), rec,
                          EditSettings(**SMALL))
    assert result.reports[0].skipped and not result.reports[1].skipped and len(rec.requests) == 1
    assert len(result.previews) == 2 and np.array_equal(result.previews[0], photo)


def test_add_outside_the_image_is_skipped():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 0:10] = True  # flush with the left border
    scene = Scene(60, 40, [make_object(1, "sofa", 0.9, (0, 10, 10, 30), mask)])
    image = np.zeros((40, 60, 3), np.uint8)
    rec = Recorder()
    plan = _plan({"op": "add", "anchor": 1, "placement": "left_of", "prompt": "a plant"},
                 {"op": "add", "anchor": 1, "placement": "right_of", "prompt": "a plant"})
    result = execute_plan(image, scene, plan, rec, EditSettings(**SMALL))
    assert result.reports[0].skipped and "outside the image" in result.reports[0].reason
    assert not result.reports[1].skipped and len(rec.requests) == 1
    painted = (result.image != 0).any(axis=-1)
    assert painted.any() and painted[:, :6].sum() == 0  # right of the sofa (x >= 10, grown by 4)


def test_op_defaults_prompts_seeds_and_overrides(photo_scene):
    photo, scene = photo_scene
    rec = Recorder()
    plan = _plan({"op": "remove", "targets": [1, 2]},
                 {"op": "remove", "targets": [2], "prompt": "a white wall"},
                 {"op": "recolor", "targets": [2], "prompt": "red"},
                 {"op": "replace", "targets": [1], "prompt": "a lamp", "strength": 0.8},
                 {"op": "add", "anchor": 1, "placement": "left_of", "prompt": "a plant"})
    settings = EditSettings(seed=2**64 - 2, negative="blurry", recolor_denoise=0.45, **SMALL)
    execute_plan(photo, scene, plan, rec, settings)
    r = rec.requests
    assert [q.prompt for q in r] == [BACKGROUND_PROMPT.default, "a white wall", "red", "a lamp", "a plant"]
    assert r[0].negative == "blurry, speaker, picture" and r[1].negative == "blurry, picture"
    assert r[2].negative == "blurry"
    assert [q.denoise for q in r] == [1.0, 1.0, 0.45, 0.8, 1.0]
    assert [q.seed for q in r] == [2**64 - 2, 2**64 - 1, 0, 1, 2]  # seed + n - 1, wrapping at 64 bits
    for q in r:
        assert q.image.dtype == np.float32 and 0 <= q.image.min() and q.image.max() <= 1
        h, w = q.image.shape[:2]
        assert h % 8 == 0 and w % 8 == 0 and 0.6 * 64 * 64 <= h * w <= 1.4 * 64 * 64


def test_actions_run_in_order_on_the_running_result():
    mask = np.zeros((48, 48), bool)
    mask[16:32, 16:32] = True
    scene = Scene(48, 48, [make_object(1, "box", 0.9, (16, 16, 32, 32), mask)])
    image = np.full((48, 48, 3), 0.5, np.float32)
    rec = Recorder()
    settings = EditSettings(working_size=64, grow=0, feather=0, context=8)
    plan = _plan({"op": "replace", "targets": [1], "prompt": "red"}, {"op": "recolor", "targets": [1], "prompt": "b"})
    result = execute_plan(image, scene, plan, rec, settings)
    second = rec.requests[1]
    centre = second.image[second.image.shape[0] // 2, second.image.shape[1] // 2]
    assert np.allclose(centre, (1, 0, 0), atol=1e-3)  # action 2 saw action 1's red
    assert np.array_equal(result.previews[0][24, 24], np.float32([1, 0, 0]))
    assert np.array_equal(result.image[24, 24], np.float32([0, 0, 1]))


def test_cancel_between_actions_leaves_the_input_alone(photo_scene):
    photo, scene = photo_scene
    before = photo.copy()
    rec = Recorder()

    class Cancelled(Exception):
        pass

    def check():
        if len(rec.requests) >= 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        execute_plan(photo, scene, _plan(*TWO_ACTIONS), rec, EditSettings(**SMALL), Progress(on_check=check))
    assert len(rec.requests) == 1 and np.array_equal(photo, before)


def test_bad_inputs_are_named(photo_scene):
    photo, scene = photo_scene
    rec = Recorder()
    plan = _plan(TWO_ACTIONS[0])
    with pytest.raises(InputError, match="scene was built for a 796x597 image but the image is 795x597"):
        execute_plan(photo[:, 1:], scene, plan, rec)
    with pytest.raises(InputError, match="working_size"):
        execute_plan(photo, scene, plan, rec, EditSettings(working_size=8))
    with pytest.raises(InputError, match="H x W x 3"):
        execute_plan(photo[..., :2], scene, plan, rec)
    assert rec.requests == []


def test_engine_returning_the_wrong_size_is_caught(photo_scene):
    photo, scene = photo_scene

    class Bad:
        multiple = 8

        def inpaint(self, request):
            return np.zeros((8, 8, 3), np.float32)

    with pytest.raises(RuntimeError, match="returned shape"):
        execute_plan(photo, scene, _plan(TWO_ACTIONS[0]), Bad(), EditSettings(**SMALL))


def test_missing_pipeline_folder_is_named(tmp_path):
    from cielr_core.editing.diffusers_engine import load_inpaint_pipeline
    from cielr_core.errors import CheckpointError, ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="nope"):
        load_inpaint_pipeline(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="model_index.json"):
        load_inpaint_pipeline(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="config folder"):
        load_inpaint_pipeline(tmp_path / "model.safetensors")


@pytest.mark.slow
def test_single_checkpoint_file_with_a_local_config(full_sd15_inpainting, tmp_path, photo_scene):
    """The full-size random SD1.5 inpainting file loads offline from one .safetensors plus a local
    config folder (configs written by the library, tokenizer from ComfyUI's install)."""
    import gc

    from cielr_core.editing.diffusers_engine import DiffusersEngine
    from cielr_core.editing.engine import SamplerSettings
    from cielr_core.editing.sd_configs import write_sd15_config
    from devkit import COMFYUI

    config = write_sd15_config(tmp_path / "sd15-inpainting", COMFYUI / "comfy" / "sd1_tokenizer", in_channels=9)
    engine = DiffusersEngine.from_path(full_sd15_inpainting, config=config,
                                       settings=SamplerSettings(steps=1, cfg=5.0))
    try:
        assert engine.pipe.unet.config.in_channels == 9 and engine.multiple == 8
        photo, scene = photo_scene
        result = execute_plan(photo, scene, _plan(TWO_ACTIONS[1]), engine, EditSettings(**SMALL))
        outside = result.mask == 0
        assert np.array_equal(result.image[outside], photo[outside]) and (result.image != photo).any()
    finally:
        del engine
        gc.collect()
    with pytest.raises(InputError, match="tokenizer folder"):
        write_sd15_config(tmp_path / "x", tmp_path)


def test_node_adapters_without_a_server(photo_scene):
    """The parts of the editing nodes that need no running ComfyUI: plan parsing, one action's mask,
    and the IMAGE round trip that keeps float32 bits."""
    import torch

    from devkit.comfyui import import_comfyui

    import_comfyui()
    from nodes.bridge import single_image, to_image
    from nodes.editing import CIELRActionMask, CIELRPlanFromJSON

    _, scene = photo_scene
    (plan,) = CIELRPlanFromJSON.execute(scene, '[{"op": "remove", "targets": [2]}, '
                                               '{"op": "recolor", "targets": [1], "prompt": "red", "strength": 0.3}]')
    assert [a.op for a in plan.actions] == ["remove", "recolor"]
    with pytest.raises(PlanError, match=r"\[7\] that are not in the scene"):
        CIELRPlanFromJSON.execute(scene, '[{"op": "remove", "targets": [7]}]')

    mask, prompt, negative, denoise = CIELRActionMask.execute(scene, plan, 1, 0, 0, "a wall")
    assert mask.shape == (1, scene.height, scene.width) and mask.dtype == torch.float32
    assert np.array_equal(mask[0].numpy() > 0, scene.get(2).mask)
    assert (prompt, negative, denoise) == ("a wall", "picture", 1.0)
    soft, *_ = CIELRActionMask.execute(scene, plan, 2, 6, 4, "a wall")
    values = soft[0].numpy()
    assert values.max() == 1.0 and ((values > 0) & (values < 1)).any() and (values > 0).sum() > scene.get(1).mask.sum()
    assert CIELRActionMask.execute(scene, plan, 2, 0, 0, "")[3] == 0.3
    with pytest.raises(InputError, match="index 3 is out of range"):
        CIELRActionMask.execute(scene, plan, 3, 0, 0, "")

    image = torch.rand(1, 5, 7, 3) * 0.999
    assert torch.equal(to_image(single_image(image, "x")), image)
