"""Checkpoint families (plain data, no ComfyUI) and actions phrased as instructions for edit models."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.editing import EditSettings, InpaintRequest, execute_plan
from cielr_core.editing.families import FAMILIES, choose_mode, family_of
from cielr_core.plan import plan_from_json
from tests.scenes import box_scene


@pytest.mark.parametrize(("name", "size"), [("SD15", 512), ("SD20", 512), ("SDXL", 1024), ("SD3", 1024),
                                            ("Flux", 1024), ("FluxInpaint", 1024), ("Flux2", 1024),
                                            ("QwenImage", 1024), ("ZImage", 1024)])
def test_working_size_follows_the_family(name, size):
    assert family_of(name, 16, 2).working_size == size


def test_guidance_defaults_only_where_the_model_reads_guidance():
    assert FAMILIES["Flux"].guidance == 3.5 and FAMILIES["FluxInpaint"].guidance == 30.0
    assert FAMILIES["Flux2"].guidance == 4.0
    for name in ("SD15", "SDXL", "SD3", "QwenImage", "ZImage", "FluxSchnell", "Chroma", "HiDream"):
        assert FAMILIES[name].guidance is None, name


@pytest.mark.parametrize(("name", "dims", "kind"), [("WAN21_T2V", 3, "video"), ("WAN22_S2V", 3, "video"),
                                                    ("HunyuanVideo15", 3, "video"), ("LTXV", 3, "video"),
                                                    ("StableAudio", 1, "audio"), ("ACEStep", 2, "audio"),
                                                    ("Hunyuan3Dv2_1", 1, "3D"), ("SomeNewVideoModel", 3, "video")])
def test_families_that_edit_no_stills_are_named(name, dims, kind):
    family = family_of(name, 16, dims)
    assert family.kind == kind and not family.edits_stills


def test_qwen_image_edits_stills_although_its_latents_are_3d():
    assert family_of("QwenImage", 16, 3).edits_stills


def test_unknown_image_families_get_a_size_from_their_latents():
    assert family_of("NewModel", 4, 2).working_size == 512 and family_of("NewModel", 16, 2).working_size == 1024


def test_edit_mode_choice():
    flux, flux2, fill = FAMILIES["Flux"], FAMILIES["Flux2"], FAMILIES["FluxInpaint"]
    assert not choose_mode(flux, False).reference  # Kontext and dev share weights: auto never guesses
    assert choose_mode(flux, False, "instruction edit").reference
    assert choose_mode(flux2, False).reference and not choose_mode(flux2, False, "inpaint").reference
    assert choose_mode(fill, True).inpaint and not choose_mode(fill, True).reference
    with pytest.raises(ValueError, match="edit_mode must be one of"):
        choose_mode(flux, False, "edit")


class Commands:
    """An engine for instruction-edit models: keeps every request, returns the crop unchanged but darker."""

    multiple = 16
    instructions = True

    def __init__(self):
        self.requests: list[InpaintRequest] = []

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        self.requests.append(request)
        return request.image * 0.5


def test_actions_are_phrased_as_instructions():
    scene = box_scene(200, 160, {1: ("speaker", (20, 20, 60, 80)), 2: ("sofa", (100, 60, 180, 140)),
                                 3: ("table", (90, 10, 140, 40))})
    plan = plan_from_json('{"actions": [{"op": "remove", "targets": [1]}, '
                          '{"op": "replace", "targets": [2], "prompt": "a floor lamp"}, '
                          '{"op": "recolor", "targets": [3], "prompt": "bright red"}, '
                          '{"op": "add", "anchor": 3, "placement": "on_top_of", "prompt": "a vase"}, '
                          '{"op": "remove", "targets": [3], "prompt": "a white wall"}]}', scene)
    engine = Commands()
    image = np.full((160, 200, 3), 128, np.uint8)
    result = execute_plan(image, scene, plan, engine, EditSettings(working_size=64, context=8))
    assert [r.instruction for r in engine.requests] == [
        "remove the speaker, continue the background seamlessly behind it",
        "replace the sofa with a floor lamp",
        "change the color of the table: bright red; keep its shape",
        "add a vase on top of the table",
        "remove the table, show a white wall behind it",
    ]
    assert engine.requests[0].prompt != engine.requests[0].instruction  # the plain prompt is still there
    assert "'replace the sofa with a floor lamp'" in result.report  # the report shows what the model read
    assert all(r.image.shape[0] % 16 == 0 and r.image.shape[1] % 16 == 0 for r in engine.requests)
    custom = execute_plan(image, scene, plan, Commands(), EditSettings(working_size=64, background_prompt="grass"))
    assert "remove the speaker, show grass behind it" in custom.report
