"""The command line: help, settings from flags and TOML, edit and scene end to end with the tiny test
models, and the clear errors (missing model, damaged checkpoint, unreachable LLM) with a non-zero exit
status, the message on stderr and no traceback unless --debug.

Commands run in this process (``run_main``) unless the child process is the point (the entry point's
exit status and stderr, --help without torch): a child that reaches torch imports it again, seconds
each; in this process main() returns the status and prints the same messages."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cielr_core.__main__ import main
from devkit.comfyui import link_model
from tests.conftest import CIEBENCH, REPO
from tests.test_bench import answer_by_schema

PHOTO = CIEBENCH / "0" / "0.png"  # JPEG data with a .png name, as in the published set
INSTRUCTION = ("Many people like to watch movies on TV, but the sound from the TV is too small. "
               "Replace the object that makes the sound louder with a floor lamp.")
FAST = ["--steps", "1", "--cfg", "1", "--working-size", "64", "--context", "16"]
PERMISSIVE = ["--box-threshold", "0", "--text-threshold", "0"]  # the tiny random detector's scores


def cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cielr_core", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_gdino, tiny_hf_gdino, tiny_sam_path, tiny_inpaint_pipeline_dir) -> Path:
    """A ComfyUI-style models folder holding the tiny test models (symlinks). The runs detect with the
    transformers-format folder (320-512 px, five times faster than the release format's 800 px here); the
    release-format file is there for the tests that name it."""
    weights, bert = tiny_gdino
    root = tmp_path_factory.mktemp("comfy") / "models"
    for path in (weights, weights.with_suffix(".json"), tiny_hf_gdino):
        link_model(root, "grounding-dino", path)
    for sub in ("sams", "diffusers"):
        (root / sub).mkdir(parents=True)
    (root / "bert-base-uncased").symlink_to(bert, target_is_directory=True)
    (root / "sams" / "sam_tiny.pth").symlink_to(tiny_sam_path)
    (root / "diffusers" / "tiny-sd").symlink_to(tiny_inpaint_pipeline_dir, target_is_directory=True)
    return root


def scene_flags(models_dir: Path) -> list[str]:
    return ["--models-dir", str(models_dir), "--gdino", "grounding-dino-tiny", "--sam", "sam_tiny.pth"]


def model_flags(models_dir: Path) -> list[str]:
    return [*scene_flags(models_dir), "--inpaint", "tiny-sd"]


# ------------------------------------------------------------------------------- help

def test_help_for_the_command_and_each_subcommand():
    done = cli("--help")
    assert done.returncode == 0 and "{edit,scene,bench,batch}" in done.stdout and "[models]" in done.stdout
    flags = {"edit": ["-o OUT", "--plan", "--scene", "--config", "--llm-url", "--llm-local", "--llm-key-env",
                      "--gdino", "--sam", "--inpaint", "--steps", "--labels", "--debug"],
             "scene": ["--instruction", "--labels", "--config", "--gdino", "--llm-url"],
             "bench": ["--out", "--limit", "--oracle", "--retry-failed", "--layout", "--sizes", "--clip", "--config",
                       "--ray", "--workers", "--worker-gpus"],
             "batch": ["--out", "--retry-failed", "--overwrite", "--labels", "--llm-url",
                       "--ray", "--workers", "--worker-cpus", "result.json", "report.txt"]}
    for command, expected in flags.items():
        done = cli(command, "--help")
        assert done.returncode == 0, done.stderr
        text = done.stdout
        assert "examples:" in text and f"python -m cielr_core {command}" in text
        for flag in expected:
            assert flag in text, (command, flag)
    assert cli("--version").stdout.startswith("cielr_core ")


def test_usage_errors_exit_with_status_2():
    done = cli("edit", str(PHOTO))  # no instruction, no -o
    assert done.returncode == 2 and "required" in done.stderr
    assert cli("frobnicate").returncode == 2


# ------------------------------------------------------------------------------- settings

def test_help_does_not_import_torch():
    # config.py builds --help from cielr_core.settings; torch (seconds to import) loads only for real work
    script = ("import runpy, sys\nsys.argv = ['cielr_core', 'edit', '--help']\n"
              "try:\n    runpy.run_module('cielr_core', run_name='__main__')\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert "--recolor-denoise" in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_toml_config_with_flags_winning(tmp_path):
    from cielr_core.__main__ import build_parser
    from cielr_core.config import resolve_settings

    (tmp_path / "models").mkdir()
    (tmp_path / "sd").mkdir()
    cfg = tmp_path / "cielr.toml"
    cfg.write_text('[models]\ndir = "models"\ninpaint = "sd"\n\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\n'
                   'api_key_env = "MY_KEY"\nvision = true\n\n[edit]\nsteps = 4\ncfg = 5\n\n'
                   '[metrics]\nsizes = [256]\n')
    args = build_parser().parse_args(["bench", "data", "--out", "o", "--config", str(cfg), "--steps", "2",
                                      "--no-llm-vision", "--sizes", "128,256"])
    s = resolve_settings(args)
    assert s.models_dir == str(tmp_path / "models") and s.models_inpaint == str(tmp_path / "sd")  # relative to file
    assert (s.edit_steps, s.edit_cfg, s.llm_vision, s.metrics_sizes) == (2, 5.0, False, [128, 256])  # flags win
    assert (s.llm_base_url, s.llm_api_key_env, s.edit_grow) == ("http://127.0.0.1:9/v1", "MY_KEY", 8)
    assert {"edit_steps", "edit_cfg", "llm_vision", "models_dir"} <= s.given and "edit_grow" not in s.given


@pytest.mark.parametrize("text, message", [
    ("[edit]\nstepz = 4\n", "unknown setting 'stepz' in [edit]; the settings there are seed, steps"),
    ("[editing]\nsteps = 4\n", "unknown section [editing]"),
    ("[edit]\nsteps = \"many\"\n", "[edit] steps must be a whole number, got 'many'"),
    ("[edit]\nsteps = 4.5\n", "[edit] steps must be a whole number"),
    ("[llm]\nvision = \"yes\"\n", "[llm] vision must be true or false"),
    ("[edit\nsteps = 4\n", "is not valid TOML"),
])
def test_config_mistakes_are_clear_errors(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    done = cli("scene", str(PHOTO), "--labels", "tv", "--config", str(cfg))
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and str(cfg) in done.stderr


def test_missing_config_file():
    done = cli("scene", str(PHOTO), "--labels", "tv", "--config", "nowhere.toml")
    assert done.returncode == 1 and "config file not found: nowhere.toml" in done.stderr


# ------------------------------------------------------------------------------- clear errors

def test_missing_model_file_names_the_folders_and_the_file(tmp_path, models_dir):
    done = cli("scene", str(PHOTO), "--labels", "tv", "--models-dir", str(models_dir), "--gdino",
               "groundingdino_swint_ogc.pth", "--sam", "sam_tiny.pth")
    assert done.returncode == 1
    err = done.stderr
    assert "GroundingDINO model not found. Expected one of: groundingdino_swint_ogc.pth" in err
    assert f"  - {models_dir / 'grounding-dino'}" in err and f"  - {models_dir / 'groundingdino'}" in err
    assert "https://huggingface.co/ShilongLiu/GroundingDINO" in err
    assert "Traceback" not in err and done.stdout == ""
    # no name and no models folder: the official names, and how to say where they are
    done = cli("scene", str(PHOTO), "--labels", "tv", cwd=tmp_path)
    assert done.returncode == 1 and "no file given and no models folder" in done.stderr
    assert "groundingdino_swint_ogc.pth, groundingdino_swinb_cogcoor.pth" in done.stderr
    # SAM by its default names in a models folder that has none
    done = cli("scene", str(PHOTO), "--labels", "tv", "--models-dir", str(models_dir), "--gdino", "tiny_gdino.pth")
    assert done.returncode == 1 and "SAM model not found. Expected one of: sam_vit_b_01ec64.pth" in done.stderr
    assert f"  - {models_dir / 'sams'}" in done.stderr
    # --debug shows the traceback instead
    done = cli("scene", str(PHOTO), "--labels", "tv", "--models-dir", str(models_dir), "--gdino", "nope.pth",
               "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ModelNotFoundError" in done.stderr


def test_missing_inpainting_model(tmp_path, models_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "edit", str(PHOTO), "remove the tv", "-o", "out.png", "--labels", "tv",
                            "--plan", "plan.json", *scene_flags(models_dir))
    assert code == 1 and "plan file not found: plan.json" in err
    code, _, err = run_main(capsys, "bench", str(CIEBENCH), "--out", "o", "--oracle", *scene_flags(models_dir))
    assert code == 1 and "no inpainting model given: pass --inpaint PATH" in err
    code, _, err = run_main(capsys, "bench", str(CIEBENCH), "--out", "o", "--oracle", "--models-dir", str(models_dir),
                            "--inpaint", "sd-inpainting")
    assert code == 1 and "Inpainting model not found. Expected one of: sd-inpainting" in err
    assert f"  - {models_dir / 'diffusers'}" in err and f"  - {models_dir / 'checkpoints'}" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_damaged_checkpoint_is_a_clear_error(tmp_path, models_dir, capsys):
    broken = tmp_path / "sam_vit_b_01ec64.pth"
    broken.write_bytes(b"PK\x03\x04 not really a checkpoint" * 10)
    code, _, err = run_main(capsys, "scene", str(PHOTO), "--labels", "tv", "--models-dir", str(models_dir),
                            "--gdino", "tiny_gdino.pth", "--sam", str(broken))
    assert code == 1
    assert f"Cannot load {broken}: the file is truncated or not a checkpoint" in err
    assert "Expected a Segment Anything checkpoint" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["edit", "scene", "bench"])
def test_unreachable_llm_is_a_clear_error_within_the_timeout(tmp_path, closed_port_url, command, models_dir,
                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = {"edit": ["edit", str(PHOTO), INSTRUCTION, "-o", str(tmp_path / "out.png"), *model_flags(models_dir)],
            "scene": ["scene", str(PHOTO), "--instruction", INSTRUCTION, *scene_flags(models_dir)],
            "bench": ["bench", str(CIEBENCH), "--out", str(tmp_path / "b"), *model_flags(models_dir)]}[command]
    start = time.monotonic()
    code, _, err = run_main(capsys, *args, "--llm-url", closed_port_url, "--llm-timeout", "5")
    assert time.monotonic() - start < 30
    assert code == 1, err
    assert f"The LLM server at {closed_port_url}/chat/completions cannot be reached (connection refused" in err
    assert "Check that the server is running and base_url is right" in err
    assert "Traceback" not in err and not (tmp_path / "out.png").exists()


def test_an_llm_that_does_not_answer_times_out(tmp_path, scripted_server, models_dir, capsys):
    """The server accepts the connection but never answers: the request's timeout ends it."""
    scripted_server.answer({"labels": ["tv"]}, delay=30)
    start = time.monotonic()
    code, _, err = run_main(capsys, "scene", str(PHOTO), "--instruction", INSTRUCTION, "-o",
                              str(tmp_path / "s.json"), "--llm-url", scripted_server.base_url, "--llm-timeout", "2",
                              *scene_flags(models_dir), *PERMISSIVE)
    assert code == 1 and "did not answer within 2 s" in err and "Traceback" not in err
    assert time.monotonic() - start < 60 and not (tmp_path / "s.json").exists()


def test_edit_needs_an_llm_or_a_plan(tmp_path, models_dir, capsys):
    code, _, err = run_main(capsys, "edit", str(PHOTO), INSTRUCTION, "-o", str(tmp_path / "x.png"),
                            *model_flags(models_dir))
    assert code == 1 and "edit needs an LLM to write the plan" in err
    code, _, err = run_main(capsys, "edit", str(PHOTO), INSTRUCTION, "-o", str(tmp_path / "x.unknown"),
                            *model_flags(models_dir))
    assert code == 1 and "cannot tell the image format" in err
    code, _, err = run_main(capsys, "bench", str(CIEBENCH), "--out", str(tmp_path / "b"), *model_flags(models_dir))
    assert code == 1 and "give an LLM" in err and "or use --oracle" in err


# ------------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def tv_speaker_scene(tmp_path_factory, models_dir) -> tuple[int, str, str, Path]:
    """``scene PHOTO --labels "tv, speaker" -o scenes/room.scene.json``, run once: (exit status, stdout,
    stderr, the scene file). One test reads the command's output, another writes a plan against it."""
    out = tmp_path_factory.mktemp("scene") / "scenes" / "room.scene.json"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["scene", str(PHOTO), "--labels", "tv, speaker", "-o", str(out), *scene_flags(models_dir),
                     *PERMISSIVE])
    return code, stdout.getvalue(), stderr.getvalue(), out


def test_scene_with_labels_and_no_llm(tv_speaker_scene):
    from cielr_core.scene import scene_from_json

    code, stdout, err, out = tv_speaker_scene
    assert code == 0, err
    preview = out.with_name("room.preview.png")
    assert stdout.split() == [str(out), str(preview)]
    scene = scene_from_json(out.read_text())
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert (scene.height, scene.width) == photo.shape[:2] and scene.objects and scene.relations is not None
    assert {o.label for o in scene.objects} <= {"tv", "speaker"}
    assert Image.open(preview).size == (photo.shape[1], photo.shape[0])
    assert "perceive done in" in err and "objects; seconds: labels" in err


def test_scene_default_output_is_in_the_working_folder(tmp_path, models_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "scene", str(PHOTO), "--labels", "tv", "-q", *scene_flags(models_dir),
                                 *PERMISSIVE)
    assert code == 0 and err == ""
    assert (tmp_path / "0.scene.json").is_file() and (tmp_path / "0.preview.png").is_file()


@pytest.mark.slow
def test_scene_with_labels_from_smollm2(tmp_path, llama_server, models_dir, capsys):
    out = tmp_path / "room.scene.json"
    code, _, err = run_main(capsys, "scene", str(PHOTO), "--instruction", INSTRUCTION, "-o", str(out),
                                 "--llm-url", llama_server.base_url, "--llm-model", llama_server.model,
                                 "--llm-timeout", "300", "--llm-max-tokens", "128", "--max-rounds", "0",
                                 *scene_flags(models_dir), *PERMISSIVE)
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["objects"] and all(o["label"] for o in data["objects"])
    assert "labels done in" in err


def test_edit_end_to_end_with_an_llm(tmp_path, scripted_server, models_dir, capsys):
    answer_by_schema(scripted_server)
    out = tmp_path / "result" / "room.png"
    code, stdout, err = run_main(capsys, "edit", str(PHOTO), INSTRUCTION, "-o", str(out), "--llm-url",
                                 scripted_server.base_url, "--llm-model", "scripted", *model_flags(models_dir),
                                 *PERMISSIVE, *FAST)
    assert code == 0, err
    files = {p: out.with_name("room" + p) for p in (".png", ".scene.json", ".preview.png", ".trace.txt",
                                                    ".plan.json", ".mask.png")}
    assert set(stdout.split()) == {str(p) for p in files.values()}
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    edited = np.asarray(Image.open(files[".png"]))
    mask = np.asarray(Image.open(files[".mask.png"])) > 0
    assert edited.shape == photo.shape and mask.any()
    assert np.array_equal(edited[~mask], photo[~mask])  # outside the edited region: bit-exact
    assert not np.array_equal(edited[mask], photo[mask])
    plan = json.loads(files[".plan.json"].read_text())
    assert plan["actions"][0]["op"] == "replace" and plan["actions"][0]["prompt"] == "a floor lamp"
    trace = files[".trace.txt"].read_text()
    assert "Labels: lamp, tv" in trace and "Round 1: sufficient" in trace and "action 1 (replace)" in trace
    assert "LLM: 3 requests" in trace
    names = [r.body["response_format"]["json_schema"]["name"] for r in scripted_server.requests]
    assert names == ["LabelList", "SceneVerdict", "PlanAnswer"]
    for stage in ("labels", "perceive", "scene", "refine", "decompose", "edit"):
        assert f"{stage} done in" in err


def test_edit_with_a_plan_and_no_llm(tmp_path, models_dir, tv_speaker_scene, capsys):
    """The flow for users without an LLM: look at the scene, write the plan, edit with it."""
    from cielr_core.scene import scene_from_json

    code, _, err, scene_file = tv_speaker_scene
    assert code == 0, err
    scene = scene_from_json(scene_file.read_text())
    target = scene.objects[-1].id
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"op": "remove", "targets": [target]}]))  # a bare list of actions is fine too
    out = tmp_path / "edited.png"
    code, _, err = run_main(capsys, "edit", str(PHOTO), "remove it", "-o", str(out), "--labels", "tv, speaker",
                                 "--plan", str(plan), *model_flags(models_dir), *PERMISSIVE, *FAST, "--grow", "0")
    assert code == 0, err
    again = scene_from_json((tmp_path / "edited.scene.json").read_text())
    assert [(o.id, o.label, o.box) for o in again.objects] == [(o.id, o.label, o.box) for o in scene.objects]
    written = json.loads((tmp_path / "edited.plan.json").read_text())
    assert written == {"actions": [{"op": "remove", "targets": [target], "prompt": ""}]}
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    edited = np.asarray(Image.open(out))
    target_mask = scene.get(target).mask
    assert np.array_equal(edited[~target_mask], photo[~target_mask])  # grow 0: only the object's own pixels
    # and the same edit from the saved scene, skipping perception
    code, _, err = run_main(capsys, "edit", str(PHOTO), "remove it", "-o", str(tmp_path / "again.png"), "--scene",
                            str(scene_file), "--plan", str(plan), "--inpaint", "tiny-sd",
                            "--models-dir", str(models_dir), *FAST, "--grow", "0")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), edited)


def test_run_pipeline_edits_an_rgba_photo(tiny_detector, tiny_sam_path, tiny_inpaint_pipeline_dir):
    """The alpha channel is dropped where the photo enters: perception and the edit both see RGB, and
    the pixels outside the edit are the photo's own."""
    from cielr_core.editing import EditSettings
    from cielr_core.editing.diffusers_engine import DiffusersEngine, SamplerSettings
    from cielr_core.perception import load_sam
    from cielr_core.pipeline import PipelineSettings, run_pipeline
    from cielr_core.plan import parse_plan

    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 128, np.uint8)], axis=2)
    engine = DiffusersEngine.from_path(tiny_inpaint_pipeline_dir, settings=SamplerSettings(steps=1, cfg=1.0))
    settings = PipelineSettings(extra_labels="tv", box_threshold=0.0, text_threshold=0.0,
                                edit=EditSettings(working_size=64, context=16))
    result = run_pipeline(rgba, "remove the tv", detector=tiny_detector, segmenter=load_sam(tiny_sam_path),
                          llm=None, engine=engine, settings=settings,
                          plan=parse_plan('[{"op": "remove", "targets": [1]}]'))
    outside = result.edit.mask == 0
    assert result.edit.image.shape == photo.shape and engine.calls == 1
    assert np.array_equal(result.edit.image[outside], photo[outside]) and not outside.all()
    assert rgba.shape[2] == 4, "the caller's array is untouched"


def test_a_plan_that_does_not_fit_the_scene(tmp_path, models_dir, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"actions": [{"op": "replace", "targets": [999], "prompt": "a lamp"}]}))
    code, _, err = run_main(capsys, "edit", str(PHOTO), "x", "-o", str(tmp_path / "o.png"), "--labels", "tv",
                            "--plan", str(plan), *model_flags(models_dir), *PERMISSIVE, *FAST)
    assert code == 1 and "The plan cannot run on this scene" in err and "objects [999]" in err
    assert "Traceback" not in err and not (tmp_path / "o.png").exists()
    assert (tmp_path / "o.scene.json").is_file()  # the scene is written first, to write a plan against
    plan.write_text(json.dumps({"actions": [{"op": "paint", "targets": [1]}]}))
    code, _, err = run_main(capsys, "edit", str(PHOTO), "x", "-o", str(tmp_path / "o.png"), "--labels", "tv",
                            "--plan", str(plan), *model_flags(models_dir))
    assert code == 1 and "actions.0.op" in err and "plan.json" in err


def test_bench_command_with_the_protocol_sizes(tmp_path, models_dir, capsys):
    out = tmp_path / "bench"
    args = ["bench", str(CIEBENCH), "--out", str(out), "--oracle", "--limit", "2", "--models-dir", str(models_dir),
            "--inpaint", "tiny-sd", *FAST]
    code, stdout, err = run_main(capsys, *args)
    assert code == 0, err
    assert stdout.strip() == str(out / "summary.md")
    assert "bench oracle" in err and "2 entries: 2 ok, 0 failed (2 run now, 0 finished before)" in err
    md = (out / "summary.md").read_text()
    for name in ("psnr_256", "ssim_512", "mse_512", "clip_512", "strict_psnr"):
        assert f"| {name} |" in md
    assert "| strict_psnr | 2 | 0 | 0 | inf (2 of 2 inf) |" in md
    code, _, err = run_main(capsys, *args)
    assert code == 0 and "(0 run now, 2 finished before)" in err
    # other settings into the same folder: refused, with what differs
    code, _, err = run_main(capsys, *args[:-len(FAST)], "--steps", "3", "--cfg", "1", "--working-size", "64",
                            "--context", "16")
    assert code == 1 and "another configuration" in err and "edit_steps: 1 before, 3 now" in err


def test_bench_resumes_against_a_restarted_llm_server_but_not_another_model():
    """A llama.cpp server restarted on another port answers the same; another model does not."""
    from cielr_core.__main__ import build_parser
    from cielr_core.cli.bench import bench_fingerprint
    from cielr_core.config import resolve_settings

    def fingerprint(*flags: str) -> dict:
        args = build_parser().parse_args(["bench", "data", "--out", "o", "--llm-model", "smollm2", *flags])
        return bench_fingerprint(resolve_settings(args), oracle=False, paths={})

    first = fingerprint("--llm-url", "http://127.0.0.1:40001/v1")
    assert fingerprint("--llm-url", "http://127.0.0.1:40002/v1", "--llm-timeout", "9") == first
    assert fingerprint("--llm-url", "http://127.0.0.1:40001/v1", "--llm-model", "qwen") != first
    assert fingerprint("--llm-url", "http://127.0.0.1:40001/v1", "--llm-temperature", "0.7") != first


def test_the_command_line_never_downloads():
    import cielr_core.__main__  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_edit_best_of_three_writes_every_verdict(tmp_path, models_dir, capsys):
    """--candidates 3: three samples of the action, the detector's verdict on each, the kept one named
    in OUT.verdicts.json, the trace and on stderr; pixels outside the mask stay exact."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"op": "remove", "targets": [1]}]))
    out = tmp_path / "best.png"
    code, _, err = run_main(capsys, "edit", str(PHOTO), "remove it", "-o", str(out), "--labels", "speaker",
                            "--plan", str(plan), *model_flags(models_dir), *PERMISSIVE, *FAST, "--candidates", "3")
    assert code == 0, err
    actions = json.loads((tmp_path / "best.verdicts.json").read_text())
    assert len(actions) == 1 and len(actions[0]["candidates"]) == 3
    assert [c["seed"] for c in actions[0]["candidates"]] == [0, 1, 2]
    kept = [c for c in actions[0]["candidates"] if c["kept"]]
    assert len(kept) == 1 and actions[0]["kept"] == kept[0]["number"]
    assert actions[0]["verdict"]["status"] in ("passed", "failed") and actions[0]["verdict"]["evidence"]
    assert f"candidate {kept[0]['number']} of 3 kept" in err
    assert "Verdicts:" in (tmp_path / "best.trace.txt").read_text()
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    mask = np.asarray(Image.open(tmp_path / "best.mask.png")) > 0
    assert np.array_equal(np.asarray(Image.open(out))[~mask], photo[~mask])

