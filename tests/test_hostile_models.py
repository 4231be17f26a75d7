"""Hostile input, part 2: a malicious pickle in every model file and folder the pack reads.

Each pickle's payload creates a marker file when unpickled (through ``os.system`` or ``exec``). For
every loader (SAM, GroundingDINO file, GroundingDINO Hugging Face folder, its BERT folder, the local
LLM folder, the diffusers pipeline folder and single checkpoint file, the metrics' LPIPS files and
CLIP folder) and for the ComfyUI loader nodes, the test checks that loading gives a clear error of
the pack's own type naming the file or folder, and that the marker was never created. A Python file
dropped into a model folder is never imported either.

The payloads are real pickles written with ``torch.save`` (zip container) and ``pickle.dump`` (the
legacy format); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cielr_core.errors import CheckpointError, CIELRError
from cielr_core.llm import LLMError
from devkit import COMFYUI

REPO = Path(__file__).resolve().parents[1]


class _System:
    """Unpickling this runs a shell command that creates the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _Exec:
    """Unpickling this runs Python code that creates the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


STYLES = ["torch-zip", "pickle-legacy"]


def write_malicious(path: Path, marker: Path, style: str, payload: type = _System) -> Path:
    """A checkpoint that looks like a state dict but runs ``payload`` when unpickled."""
    obj = {"state_dict": {"weight": payload(marker)}, "model": payload(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "torch-zip":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def plant_python(folder: Path, marker: Path) -> None:
    """A .py file in a model folder, named like the files loaders might look for: never imported."""
    for name in ("modeling.py", "config.py", "__init__.py", "GroundingDINO_SwinT_OGC.py"):
        (folder / name).write_text(f"open({str(marker)!r}, 'w').write('imported')\n")


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PAYLOAD-RAN"
    yield path
    assert not path.exists(), "a payload in a model file ran"


def _copy_without_weights(src: Path, dst: Path) -> Path:
    """An HF-format folder's config and tokenizer files, without its weights."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pth"))
    return dst


def poisoned_copy(src: Path, dst: Path, marker: Path, style: str,
                  weights: tuple[str, ...] = ("pytorch_model.bin",)) -> Path:
    """``src`` (an HF-format folder) copied to ``dst`` with malicious pickles as its only weights and
    planted Python modules beside them."""
    folder = _copy_without_weights(src, dst)
    for name in weights:
        write_malicious(folder / name, marker, style)
    plant_python(folder, marker)
    assert not list(folder.rglob("*.safetensors")), "the test folder must hold only the malicious weights"
    return folder


# ------------------------------------------------------------------------------ SAM


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("payload", [_System, _Exec])
def test_sam_checkpoint(tmp_path, marker, style, payload):
    from cielr_core.perception import load_sam

    path = write_malicious(tmp_path / "sams" / "sam_vit_b_01ec64.pth", marker, style, payload)
    with pytest.raises(CheckpointError, match="sam_vit_b_01ec64.pth") as e:
        load_sam(path)
    assert "refused" in str(e.value) or "not a checkpoint" in str(e.value)


def test_sam_checkpoint_with_a_json_config_beside_it(tmp_path, marker, tiny_sam_path):
    """A JSON file beside the weights is data; a .py beside them is never run."""
    from cielr_core.perception import load_sam

    folder = tmp_path / "sams"
    path = write_malicious(folder / "sam_vit_b_01ec64.pth", marker, "torch-zip")
    (folder / "sam_vit_b_01ec64.json").write_text('{"__class__": "os.system", "args": ["touch x"]}')
    plant_python(folder, marker)
    with pytest.raises(CheckpointError, match="sam_vit_b_01ec64.pth"):
        load_sam(path)


# ------------------------------------------------------------------------------ GroundingDINO


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", ["groundingdino_swint_ogc.pth", "groundingdino_swinb_cogcoor.pth", "weights.bin",
                                  "weights.ckpt"])
def test_grounding_dino_checkpoint(tmp_path, marker, tiny_gdino, style, name):
    from cielr_core.perception import load_grounding_dino

    folder = tmp_path / "grounding-dino"
    path = write_malicious(folder / name, marker, style)
    plant_python(folder, marker)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_grounding_dino(path, tiny_gdino[1])


@pytest.mark.parametrize("style", STYLES)
def test_grounding_dino_text_encoder_folder_weights_are_never_read(tmp_path, marker, tiny_gdino, style):
    """The BERT folder gives only its config and vocabulary (the checkpoint carries the text encoder's
    weights), so a pickle planted in it is never even opened: the detector loads."""
    from cielr_core.perception import load_grounding_dino

    weights, bert = tiny_gdino
    evil_bert = shutil.copytree(bert, tmp_path / "bert-base-uncased")
    for name in ("pytorch_model.bin", "model.pth", "tf_model.h5", "flax_model.msgpack"):
        write_malicious(evil_bert / name, marker, style)
    plant_python(evil_bert, marker)
    detector = load_grounding_dino(weights, evil_bert)
    assert detector is not None


@pytest.mark.parametrize("style", STYLES)
def test_grounding_dino_hf_folder(tmp_path, marker, tiny_hf_gdino, style):
    from cielr_core.perception import load_grounding_dino

    folder = poisoned_copy(tiny_hf_gdino, tmp_path / "grounding-dino" / "grounding-dino-tiny", marker, style)
    with pytest.raises(CheckpointError, match="grounding-dino-tiny"):
        load_grounding_dino(folder)


def test_grounding_dino_hf_folder_asking_for_remote_code(tmp_path, marker, tiny_hf_gdino):
    """A config that asks for custom model code: refused, the code never imported."""
    from cielr_core.perception import load_grounding_dino

    folder = shutil.copytree(tiny_hf_gdino, tmp_path / "evil-gdino")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling.EvilConfig",
                          "AutoModelForZeroShotObjectDetection": "modeling.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    plant_python(folder, marker)
    try:
        load_grounding_dino(folder)  # transformers may ignore auto_map entirely (trust_remote_code is off)
    except CIELRError as e:
        assert "evil-gdino" in str(e)


# ------------------------------------------------------------------------------ local LLM


@pytest.mark.parametrize("style", STYLES)
def test_local_llm_folder(tmp_path, marker, tiny_chat_model, style):
    from cielr_core.llm import LocalLLM, Message
    from cielr_core.reasoning import LabelList

    folder = poisoned_copy(tiny_chat_model, tmp_path / "LLM" / "tiny-chat", marker, style)
    with pytest.raises(LLMError, match="tiny-chat"):
        LocalLLM(folder).complete([Message(role="user", content="hi")], LabelList)


def test_local_llm_gguf_that_is_a_pickle(tmp_path, marker):
    """A .gguf that holds a pickle instead: never unpickled, a clear error."""
    from cielr_core.llm import LocalLLM, Message
    from cielr_core.reasoning import LabelList

    path = write_malicious(tmp_path / "LLM" / "model.Q4_K_M.gguf", marker, "pickle-legacy")
    with pytest.raises(CIELRError, match=r"model\.Q4_K_M\.gguf"):
        LocalLLM(path).complete([Message(role="user", content="hi")], LabelList)


# ------------------------------------------------------------------------------ diffusers engine


@pytest.mark.parametrize("style", STYLES)
def test_diffusers_pipeline_folder(tmp_path, marker, tiny_inpaint_pipeline_dir, style):
    from cielr_core.editing.diffusers_engine import load_inpaint_pipeline

    folder = poisoned_copy(tiny_inpaint_pipeline_dir, tmp_path / "sd-inpaint", marker, style,
                           ("unet/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.bin",
                            "text_encoder/pytorch_model.bin"))
    with pytest.raises(CheckpointError, match="sd-inpaint"):
        load_inpaint_pipeline(folder)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", ["sd15-inpainting.ckpt", "sd15.pt", "sd15.pth", "sd15.bin"])
def test_diffusers_single_checkpoint_file(tmp_path, marker, tiny_inpaint_pipeline_dir, style, name):
    from cielr_core.editing.diffusers_engine import load_inpaint_pipeline

    path = write_malicious(tmp_path / "checkpoints" / name, marker, style)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_inpaint_pipeline(path, config=tiny_inpaint_pipeline_dir)


# ------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize("style", STYLES)
def test_lpips_weights(tmp_path, marker, style):
    from cielr_core.evaluation import LPIPSModel, Unavailable, load_lpips

    backbone = write_malicious(tmp_path / "squeezenet1_1-b8a52dc0.pth", marker, style)
    linear = write_malicious(tmp_path / "squeeze.pth", marker, style, _Exec)
    with pytest.raises(CheckpointError, match="squeezenet1_1"):
        LPIPSModel.load(backbone, linear, "squeeze")
    found = load_lpips(backbone, linear, "squeeze")
    assert isinstance(found, Unavailable) and "squeezenet1_1" in found.reason


@pytest.mark.parametrize("style", STYLES)
def test_clip_folder(tmp_path, marker, style):
    from transformers import CLIPConfig

    from cielr_core.evaluation import CLIPScorer, Unavailable, load_clip

    folder = tmp_path / "clip-vit-large-patch14"
    CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                            "num_attention_heads": 2},
               vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
               projection_dim=8).save_pretrained(folder)
    write_malicious(folder / "pytorch_model.bin", marker, style)
    plant_python(folder, marker)
    with pytest.raises(Exception) as e:
        CLIPScorer.load(folder)
    assert not isinstance(e.value, pickle.UnpicklingError) or "weights_only" in str(e.value)
    found = load_clip(folder)
    assert isinstance(found, Unavailable) and "clip-vit-large-patch14" in found.reason


# ------------------------------------------------------------------------------ the ComfyUI loader nodes

_NODE_SCRIPT = textwrap.dedent(r'''
    import json, os, sys
    repo, comfyui, models = sys.argv[1:4]
    sys.path[:0] = [repo]
    sys.path.append(comfyui)  # after the repo: the pack's "nodes" package wins over ComfyUI's nodes.py
    import comfy.options
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # no GPU probing
    import folder_paths
    folder_paths.models_dir = models
    from nodes.model_folders import register_model_folders
    register_model_folders()
    from nodes.loaders import CIELRGroundingDINOLoader, CIELRSAMLoader
    from nodes.llm import CIELRLLMLocal
    calls = {
        "sam": lambda: CIELRSAMLoader.execute("sam_vit_b_01ec64.pth", "cpu"),
        "gdino file": lambda: CIELRGroundingDINOLoader.execute("groundingdino_swint_ogc.pth",
                                                              "bert-base-uncased", "cpu"),
        "gdino folder": lambda: CIELRGroundingDINOLoader.execute("grounding-dino-tiny", "bert-base-uncased", "cpu"),
        "llm folder": lambda: CIELRLLMLocal.execute("tiny-chat", "cpu", 0.0, 0, 64),
    }
    out = {}
    for name, call in calls.items():
        try:
            call()
            out[name] = ["no error", ""]
        except BaseException as e:
            out[name] = [type(e).__name__ + " " + " ".join(c.__name__ for c in type(e).__mro__), str(e)]
    print("RESULT " + json.dumps(out))
''')


def test_comfyui_loader_nodes(tmp_path, marker, tiny_gdino, tiny_hf_gdino, tiny_chat_model):
    """The loader nodes with ComfyUI's real folder_paths over a models folder where every file is hostile."""
    if not (COMFYUI / "folder_paths.py").is_file():
        pytest.fail(f"ComfyUI is not installed at {COMFYUI}: run the tests through scripts/test.sh")
    models = tmp_path / "models"
    write_malicious(models / "sams" / "sam_vit_b_01ec64.pth", marker, "torch-zip")
    write_malicious(models / "grounding-dino" / "groundingdino_swint_ogc.pth", marker, "pickle-legacy", _Exec)
    poisoned_copy(tiny_hf_gdino, models / "grounding-dino" / "grounding-dino-tiny", marker, "torch-zip")
    bert = shutil.copytree(tiny_gdino[1], models / "bert-base-uncased")
    write_malicious(bert / "pytorch_model.bin", marker, "torch-zip")
    poisoned_copy(tiny_chat_model, models / "LLM" / "tiny-chat", marker, "pickle-legacy")
    for folder in (models / "sams", models / "grounding-dino", bert):
        plant_python(folder, marker)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", _NODE_SCRIPT, str(REPO), str(COMFYUI), str(models)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    results = json.loads(lines[-1][len("RESULT "):])
    expect = {"sam": ("CheckpointError", "sam_vit_b_01ec64.pth"),
              "gdino file": ("CheckpointError", "groundingdino_swint_ogc.pth"),
              "gdino folder": ("CheckpointError", "grounding-dino-tiny"),
              "llm folder": ("LLMError", "tiny-chat")}
    for name, (kind, names) in expect.items():
        types, message = results[name]
        assert kind in types.split() and "CIELRError" in types.split(), f"{name}: {types}: {message}"
        assert names in message, f"{name}: {message}"


def test_the_refusal_says_what_was_refused(tmp_path, marker, tiny_inpaint_pipeline_dir):
    """The message names the file, says it was refused and which global the pickle wanted to call."""
    from cielr_core.editing.diffusers_engine import load_inpaint_pipeline
    from cielr_core.perception import load_sam

    path = write_malicious(tmp_path / "sam_vit_h_4b8939.pth", marker, "torch-zip")
    with pytest.raises(CheckpointError) as e:
        load_sam(path)
    message = str(e.value)
    assert str(path) in message and "refused to unpickle" in message and "system" in message
    with pytest.raises(CheckpointError) as e:
        load_inpaint_pipeline(path, config=tiny_inpaint_pipeline_dir)
    message = str(e.value)
    assert str(path) in message and "refused to unpickle" in message and "system" in message
