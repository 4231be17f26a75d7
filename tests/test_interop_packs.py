"""CIELR beside the real Impact Pack and storyicon's segment-anything nodes, in one ComfyUI server (POST /prompt).

Neither pack is on PyPI, and CI reaches PyPI only: their source comes from a checkout or a git snapshot at
the paths devkit/external_packs.py documents, and without it these tests do not run and say so in the
summary ("NEEDS AN EXTERNAL CHECKOUT"). What they check without the packs is checked by
test_interop_doors.py (the same object types, built by the same libraries) and test_interop_comfyui.py.

The packs' missing requirements go into a folder of their own (pip --no-deps), never into the venv.
storyicon's GroundingDINO loader builds groundingdino's BertModelWarper, which calls helpers transformers 5
removed, so this server runs on the transformers 4.57 copy setup_env.sh keeps beside the venv, as
storyicon's users must.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from devkit import external_packs as ep
from devkit.comfyui import describe, execution_error, link_model, start_comfyui, stop_comfyui
from devkit.sam_models import build_tiny_sam
from tests.conftest import CIEBENCH
from tests.test_interop_comfyui import LAMP, PHOTO, TABLE, H, W, batch, rect_mask

pytestmark = pytest.mark.slow

PACKS = [ep.IMPACT, ep.STORYICON]
# a small GroundingDINO in storyicon's file names: Swin-T with one encoder and one decoder layer
GDINO_SMALL = {"backbone": "swin_T_224_1k", "enc_layers": 1, "dec_layers": 1, "dim_feedforward": 64,
               "num_queries": 50}
STORYICON_SAM, STORYICON_GDINO = "sam_vit_b (375MB)", "GroundingDINO_SwinT_OGC (694MB)"
TINY_SAM = "tiny_sam.pth"


@pytest.fixture(scope="module")
def packs_server(tmp_path_factory, full_sam_vit_b_path, sd15_models):
    missing = [ep.missing_text(p) for p in PACKS if ep.source(p) is None]
    if missing:
        pytest.skip(" ".join(missing))
    import torch

    from cielr_core.perception import gdino_configs
    from devkit import CACHE
    from devkit.gdino_models import TINY_BERT, build_bert_folder, build_gdino_model, release_state_dict

    base = tmp_path_factory.mktemp("packs-base")
    models = base / "models"
    link_model(models, "sams", full_sam_vit_b_path)
    build_tiny_sam(models / "sams" / TINY_SAM)  # for the detector test: any segmenter serves there
    link_model(models, "checkpoints", sd15_models.checkpoint)
    (models / "grounding-dino").mkdir()
    bert = build_bert_folder(models / "bert-base-uncased", **TINY_BERT)  # with model.safetensors, as storyicon wants
    cfg = gdino_configs.full_config(GDINO_SMALL)
    gdino = models / "grounding-dino" / "groundingdino_swint_ogc.pth"
    torch.save({"model": release_state_dict(build_gdino_model(cfg, bert))}, gdino)
    gdino.with_suffix(".json").write_text(json.dumps(GDINO_SMALL))  # how CIELR's loader reads a size not in its table
    # storyicon executes this groundingdino config (its loader's format); it describes the same small model
    (models / "grounding-dino" / "GroundingDINO_SwinT_OGC.cfg.py").write_text(
        "".join(f"{k} = {v!r}\n" for k, v in cfg.items()))
    (base / "input").mkdir()
    shutil.copy(CIEBENCH / "0" / "0.png", base / "input" / PHOTO)
    env = ep.link_into(base, PACKS)
    env["PYTHONPATH"] = f"{CACHE / 'transformers4'}:{env['PYTHONPATH']}"
    server = start_comfyui(base, timeout=300, test_nodes=True, env=env)
    yield server
    stop_comfyui(server)


def run(server, prompt: dict, timeout: float = 900) -> dict:
    entry = server.run(prompt, timeout=timeout)
    assert execution_error(entry) is None, describe(execution_error(entry))
    return entry["outputs"]


def tensor(server, outputs: dict, node: str) -> np.ndarray:
    return np.load(server.base / "output" / outputs[node]["tensors"][0])


def text(outputs: dict, node: str) -> str:
    return outputs[node]["text"][0]


def save(node: str, source: list, kind: str = "mask") -> dict:
    return {node: {"class_type": "TestOnlySaveTensor", "inputs": {"name": node, kind: source}}}


def scene_graph(plan: dict) -> dict:
    prompt = {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
              **rect_mask("lamp", (W, H), LAMP), **rect_mask("table", (W, H), TABLE), **batch(["lamp", "table"]),
              "scene": {"class_type": "CIELRSceneFromMasks",
                        "inputs": {"image": ["photo", 0], "masks": ["batch", 0], "labels": "lamp, table"}},
              "build": {"class_type": "CIELRBuildScene", "inputs": {"image": ["photo", 0], "scene": ["scene", 0]}},
              "plan": {"class_type": "CIELRPlanFromJSON",
                       "inputs": {"scene": ["build", 0], "plan_json": json.dumps(plan)}}}
    return prompt


PLAN = {"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}, {"op": "remove", "targets": [2]}]}


@pytest.mark.parametrize("feather", [0, 6])
def test_plan_to_segs_combines_to_plan_to_masks_union(packs_server, feather):
    """Impact's SegsToCombinedMask of Plan To SEGS is Plan To Masks' union, pixel for pixel. Impact combines
    in 8 bits (uint8 OR of mask x 255), so a feathered edge comes back as Impact rounds it: floor(w x 255)/255."""
    prompt = scene_graph(PLAN)
    region = {"scene": ["build", 0], "plan": ["plan", 0], "grow": 5, "feather": feather, "background_prompt": "a wall"}
    prompt.update({
        "masks": {"class_type": "CIELRPlanToMasks",
                  "inputs": {**region, "negative": "", "recolor_denoise": 0.6}},
        "segs": {"class_type": "CIELRPlanToSEGS", "inputs": {**region, "context": 32, "image": ["photo", 0]}},
        "combined": {"class_type": "SegsToCombinedMask", "inputs": {"segs": ["segs", 0]}},
        "report": {"class_type": "PreviewAny", "inputs": {"source": ["segs", 1]}},
        **save("union", ["masks", 1]), **save("impact", ["combined", 0]),
    })
    outputs = run(packs_server, prompt)
    union, impact = tensor(packs_server, outputs, "union")[0], tensor(packs_server, outputs, "impact")[0]
    assert union.shape == impact.shape == (H, W) and (union > 0).sum() > 1000
    if feather == 0:
        assert set(np.unique(union)) == {0.0, 1.0} and np.array_equal(impact, union)
    else:
        assert np.array_equal(impact, np.floor(union * np.float32(255)).astype(np.uint8) / np.float32(255)) or \
            np.abs(impact - union).max() <= 1 / 255 + 1e-6
    report = text(outputs, "report")
    assert "action 1:" in report and "'a floor lamp'" in report and "'a wall'" in report


def test_impact_detailer_edits_only_inside_the_plans_masks(packs_server, sd15_models):
    """Plan To SEGS -> Impact's DetailerForEach (feather 0) with the random SD1.5 checkpoint: pixels change
    inside the SEGS' combined mask and not one outside it."""
    prompt = scene_graph(PLAN)
    prompt.update({
        "segs": {"class_type": "CIELRPlanToSEGS",
                 "inputs": {"scene": ["build", 0], "plan": ["plan", 0], "grow": 4, "feather": 0, "context": 16,
                            "background_prompt": "a wall"}},
        "combined": {"class_type": "SegsToCombinedMask", "inputs": {"segs": ["segs", 0]}},
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sd15_models.checkpoint.name}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a floor lamp"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "detail": {"class_type": "DetailerForEach", "inputs": {
            "image": ["photo", 0], "segs": ["segs", 0], "model": ["ckpt", 0], "clip": ["ckpt", 1], "vae": ["ckpt", 2],
            "guide_size": 64, "guide_size_for": True, "max_size": 128, "seed": 1, "steps": 1, "cfg": 1.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["pos", 0], "negative": ["neg", 0],
            "denoise": 1.0, "feather": 0, "noise_mask": True, "force_inpaint": True, "wildcard": "", "cycle": 1}},
        **save("before", ["photo", 0], "image"), **save("after", ["detail", 0], "image"),
        **save("mask", ["combined", 0]),
    })
    outputs = run(packs_server, prompt)
    before, after = tensor(packs_server, outputs, "before")[0], tensor(packs_server, outputs, "after")[0]
    mask = tensor(packs_server, outputs, "mask")[0] > 0
    changed = (before != after).any(axis=-1)
    assert changed.any(), "the detailer changed nothing"
    assert not (changed & ~mask).any(), f"{int((changed & ~mask).sum())} pixels changed outside the mask"


def boxes_scene(segmenter: list) -> dict:
    return {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
            "boxes": {"class_type": "TestOnlyBBOX", "inputs": {"boxes": json.dumps([list(LAMP), list(TABLE)])}},
            "scene": {"class_type": "CIELRSceneFromBoxes",
                      "inputs": {"image": ["photo", 0], "boxes": ["boxes", 0], "labels": "lamp, table",
                                 "box_format": "x0, y0, x1, y1", "segmenter": segmenter}}}


@pytest.fixture(scope="module")
def our_masks(packs_server, full_sam_vit_b_path) -> np.ndarray:
    """The masks CIELR SAM Loader gives on the same file (once for both owners)."""
    ours = boxes_scene(["sam", 0])
    ours.update({"sam": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": full_sam_vit_b_path.name,
                                                                   "device": "cpu"}},
                 "masks": {"class_type": "CIELRSceneToMasks", "inputs": {"scene": ["scene", 0]}},
                 **save("ours", ["masks", 0])})
    return tensor(packs_server, run(packs_server, ours), "ours")


@pytest.mark.parametrize("owner", ["impact", "storyicon"])
def test_other_packs_sam_segments_as_cielrs_own_loader(packs_server, full_sam_vit_b_path, our_masks, owner):
    """The same sam_vit_b file through Impact's SAMLoader (AUTO device mode) or storyicon's SAMModelLoader,
    then CIELR Segmenter From SAM_MODEL, gives the masks CIELR SAM Loader gives, and the report says the
    model was used in place."""
    loader = ({"class_type": "SAMLoader", "inputs": {"model_name": full_sam_vit_b_path.name, "device_mode": "AUTO"}}
              if owner == "impact" else
              {"class_type": "SAMModelLoader (segment anything)", "inputs": {"model_name": STORYICON_SAM}})
    theirs = boxes_scene(["adopt", 0])
    theirs.update({"owner": loader, "adopt": {"class_type": "CIELRSegmenterFromSAMModel",
                                              "inputs": {"sam_model": ["owner", 0]}},
                   "report": {"class_type": "PreviewAny", "inputs": {"source": ["adopt", 1]}},
                   "masks": {"class_type": "CIELRSceneToMasks", "inputs": {"scene": ["scene", 0]}},
                   **save("theirs", ["masks", 0])})
    a = run(packs_server, theirs)
    report = text(a, "report")
    assert "used as the CIELR segmenter in place on cpu: nothing copied or moved" in report, report
    if owner == "impact":
        assert "owner's device policy (SAMWrapper)" in report
    masks = tensor(packs_server, a, "theirs")
    assert masks.shape == (2, H, W) and masks.any()
    assert np.array_equal(masks, our_masks)


def test_storyicon_groundingdino_detects_as_cielrs_own_loader(packs_server):
    """storyicon's GroundingDinoModelLoader model, converted by CIELR Detector From GROUNDING_DINO_MODEL, finds
    the same objects as CIELR GroundingDINO Loader on the same file; the report gives the copy's memory."""
    def perceive(detector: dict, extra: dict) -> dict:
        return {"photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
                "sam": {"class_type": "CIELRSAMLoader", "inputs": {"model_name": TINY_SAM, "device": "cpu"}},
                "det": detector, **extra,
                "perceive": {"class_type": "CIELRPerceive", "inputs": {
                    "image": ["photo", 0], "detector": ["det", 0], "segmenter": ["sam", 0], "labels": "tv, lamp, sofa",
                    "box_threshold": 0.0, "text_threshold": 0.0}},
                "build": {"class_type": "CIELRBuildScene", "inputs": {"image": ["photo", 0], "scene": ["perceive", 0]}},
                "json": {"class_type": "PreviewAny", "inputs": {"source": ["build", 1]}}}

    theirs = perceive({"class_type": "CIELRDetectorFromGroundingDINOModel",
                       "inputs": {"grounding_dino_model": ["dino", 0]}},
                      {"dino": {"class_type": "GroundingDinoModelLoader (segment anything)",
                                "inputs": {"model_name": STORYICON_GDINO}},
                       "report": {"class_type": "PreviewAny", "inputs": {"source": ["det", 1]}}})
    ours = perceive({"class_type": "CIELRGroundingDINOLoader", "inputs": {
        "model_name": "groundingdino_swint_ogc.pth", "text_encoder": "bert-base-uncased", "device": "cpu"}}, {})
    a, b = run(packs_server, theirs), run(packs_server, ours)
    report = text(a, "report")
    assert "converted once into transformers' GroundingDINO" in report and " MB on cpu" in report, report
    scene_a, scene_b = json.loads(text(a, "json")), json.loads(text(b, "json"))
    assert scene_a["objects"] and scene_a == scene_b
