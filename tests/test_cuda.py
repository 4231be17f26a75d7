"""What needs a CUDA GPU: the library's models on the GPU give what they give on the CPU, and an edit
on the GPU keeps every pixel outside its mask.

Marked ``cuda``: the default run leaves them out (tests/conftest.py) and ``scripts/device_check.sh``
runs them (``-m cuda``) on a machine with a GPU. They use only what such a machine has or the check
carries (no ComfyUI, no GroundingDINO reference package, no browser), and fail, never skip, without
CUDA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.cuda

LABELS = ["tv", "sofa", "lamp"]


@pytest.fixture(scope="module", autouse=True)
def exact_gpu():
    """A CUDA device, with TF32 off so GPU and CPU results compare tightly."""
    if not torch.cuda.is_available():
        pytest.fail(f"no CUDA device (torch {torch.__version__}): run these through scripts/device_check.sh "
                    "on a machine with a CUDA GPU")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def hf_gdino(tmp_path_factory) -> Path:
    """A tiny transformers-format GroundingDINO (built without the reference package)."""
    from devkit.gdino_models import TINY_BERT, build_bert_folder, build_tiny_hf_gdino

    folder = tmp_path_factory.mktemp("cuda-gdino")
    return build_tiny_hf_gdino(folder / "grounding-dino-tiny", build_bert_folder(folder / "bert", **TINY_BERT))


def test_auto_device_is_the_gpu():
    from cielr_core.config import resolve_device

    assert resolve_device("auto") == "cuda"


def test_detector_on_the_gpu_gives_the_cpu_boxes(hf_gdino, photo):
    from cielr_core.perception.detector import load_grounding_dino

    cpu = load_grounding_dino(hf_gdino).detect(photo, LABELS, box_threshold=0.0, text_threshold=0.0)
    detector = load_grounding_dino(hf_gdino, device="cuda")
    assert detector.device.type == "cuda"
    gpu = detector.detect(photo, LABELS, box_threshold=0.0, text_threshold=0.0)
    assert len(cpu) > 0 and len(gpu) == len(cpu)
    np.testing.assert_allclose(np.sort(gpu.scores), np.sort(cpu.scores), atol=1e-3)
    order_cpu, order_gpu = np.argsort(-cpu.scores, kind="stable"), np.argsort(-gpu.scores, kind="stable")
    np.testing.assert_allclose(gpu.boxes[order_gpu][:5], cpu.boxes[order_cpu][:5], atol=1.0)
    assert detector.to("cpu").device.type == "cpu"  # a memory manager moves it back


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.mark.parametrize("sam", ["tiny_sam_path", "full_sam_vit_b_path"])
def test_segmenter_on_the_gpu_gives_the_cpu_masks(sam, request, photo):
    from cielr_core.perception.segmenter import load_sam

    path = request.getfixturevalue(sam)
    h, w = photo.shape[:2]
    boxes = np.array([[w * 0.1, h * 0.2, w * 0.5, h * 0.7], [w * 0.55, h * 0.1, w * 0.95, h * 0.6]], np.float32)
    cpu = load_sam(path).segment(photo, boxes)
    segmenter = load_sam(path, device="cuda")
    assert segmenter.device.type == "cuda"
    gpu = segmenter.segment(photo, boxes)
    assert gpu.shape == cpu.shape == (2, h, w) and gpu.dtype == bool
    for a, b in zip(gpu, cpu, strict=True):
        assert iou(a, b) > 0.98
    half = load_sam(path, device="cuda", dtype=torch.float16)  # the encoder in half precision, the decoder not
    assert half.dtype == torch.float16 and half.segment(photo, boxes).shape == cpu.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_edit_on_the_gpu_keeps_every_pixel_outside_the_mask(tiny_inpaint_pipeline_dir, photo, dtype):
    from cielr_core.editing.diffusers_engine import DiffusersEngine, load_inpaint_pipeline
    from cielr_core.editing.engine import SamplerSettings
    from cielr_core.editing.execute import EditSettings, execute_plan
    from cielr_core.plan import Action, Plan
    from cielr_core.scene import build_scene, make_object
    from cielr_core.scene.model import Scene

    h, w = photo.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[h // 3: h // 2, w // 4: w // 2] = True
    scene = build_scene(Scene(w, h, [make_object(1, "lamp", 0.9, (w // 4, h // 3, w // 2, h // 2), mask)]))
    pipe = load_inpaint_pipeline(tiny_inpaint_pipeline_dir, device="cuda", dtype=dtype)
    engine = DiffusersEngine(pipe, SamplerSettings(steps=2, cfg=5.0))
    before = photo.copy()
    plan = Plan(actions=[Action(op="replace", targets=[1], prompt="a floor lamp")])
    result = execute_plan(photo, scene, plan, engine, EditSettings(seed=3, working_size=128))
    assert np.array_equal(photo, before), "the input was modified"
    outside = result.mask == 0
    assert outside.any() and np.array_equal(result.image[outside], photo[outside])
    assert (result.image[~outside] != photo[~outside]).any()
    assert engine.calls == 1 and pipe.unet.device.type == "cuda"


def test_local_llm_on_the_gpu_answers_in_the_schema(tiny_chat_model):
    from pydantic import Field

    from cielr_core.llm import Answer, Label, LocalLLM, Message

    class Labels(Answer):
        labels: list[Label] = Field(max_length=5)

    prompt = [Message(role="user", content="Which objects should be detected to remove the cup?")]
    llm = LocalLLM(tiny_chat_model, device="cuda", max_new_tokens=200)
    assert llm.dtype == "bfloat16"  # the GPU default
    answer = llm.complete(prompt, Labels)
    assert isinstance(answer, Labels)
    assert next(llm.model.parameters()).device.type == "cuda"
    assert LocalLLM(tiny_chat_model, device="cuda", max_new_tokens=200).complete(prompt, Labels) == answer
