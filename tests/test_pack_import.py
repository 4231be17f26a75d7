"""Importing the pack is cheap; a pack that cannot load says why where ComfyUI users look (the
"IMPORT FAILED" line, with the packages to install); a missing optional package costs only the feature
that needs it, which names its optional group and the command that installs it when it runs."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from cielr_core.dependencies import OPTIONAL_GROUPS
from tests.conftest import REPO

HEAVY = ("groundingdino", "segment_anything", "transformers", "diffusers")
HIDE = Path(__file__).parent / "fixtures" / "hide_packages"


def hiding(*packages: str) -> dict[str, str]:
    """The environment of a child Python that sees each "dist-name:module" as not installed."""
    pythonpath = os.pathsep.join(p for p in (str(HIDE), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": pythonpath, "CIELR_TEST_HIDE": ",".join(packages)}


# The nodes are built on ComfyUI's comfy_api: a child that loads the pack as ComfyUI does has ComfyUI's
# packages importable (outside ComfyUI the pack registers nothing)
WITH_COMFYUI = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                "from devkit.comfyui import import_comfyui; import_comfyui()\n")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITH_COMFYUI + textwrap.dedent(code)], cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_pack_import_is_cheap_and_registers_nodes():
    done = run_python(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("cielr_pack", {str(REPO / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO)!r}])
        pack = importlib.util.module_from_spec(spec); sys.modules["cielr_pack"] = pack
        spec.loader.exec_module(pack)
        print(sorted(pack.NODE_CLASS_MAPPINGS))
        print([m for m in {HEAVY!r} if m in sys.modules])
    """)
    assert done.returncode == 0, done.stderr
    names, heavy = done.stdout.strip().splitlines()[-2:]
    for node in ("CIELRGroundingDINOLoader", "CIELRSAMLoader", "CIELRPerceive", "CIELRBuildScene",
                 "CIELRScenePreview"):
        assert node in names
    assert heavy == "[]", f"importing the pack loaded {heavy}"


def test_a_broken_library_fails_the_import_with_its_reason():
    # cielr_core shadowed by a package that raises on import: the import raises (ComfyUI then lists
    # the pack as IMPORT FAILED with this reason) instead of registering nothing in silence
    done = run_python(f"""
        import importlib.util, sys, types
        broken = types.ModuleType("cielr_core"); broken.__path__ = []
        sys.modules["cielr_core"] = broken
        sys.modules["cielr_core.dependencies"] = None  # import of a None entry raises ImportError
        spec = importlib.util.spec_from_file_location("cielr_pack", {str(REPO / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO)!r}])
        pack = importlib.util.module_from_spec(spec); sys.modules["cielr_pack"] = pack
        try:
            spec.loader.exec_module(pack)
        except ImportError as e:
            print("raised:", e)
    """)
    assert done.returncode == 0, done.stderr
    assert "raised:" in done.stdout and "cielr_core.dependencies" in done.stdout
    assert "CIELR nodes could not be loaded" in done.stderr


def test_unmet_requirements_are_named_with_the_install_command(tmp_path):
    from cielr_core.dependencies import check_requirements, read_requirements, unmet
    from cielr_core.errors import MissingRequirementsError

    req = tmp_path / "requirements.txt"
    req.write_text("# comment\n--extra-index-url https://example.invalid\nnumpy>=1.0\n"
                   "numpy [extra] >= 999.0   # too new to exist\n"
                   "cielr-no-such-package>=1.0\n"
                   'pydantic>=2.0; python_version < "3.0"\n')
    assert [r.name for r in read_requirements(req)] == ["numpy", "numpy", "cielr-no-such-package", "pydantic"]
    problems = unmet(read_requirements(req))
    assert problems[0].startswith("numpy>=999.0 (") and "installed)" in problems[0]
    assert problems[1] == "cielr-no-such-package>=1.0 (not installed)"
    assert len(problems) == 2, "the marker-excluded line must not count"
    with pytest.raises(MissingRequirementsError, match="cielr-no-such-package") as err:
        check_requirements(req)
    assert "-m pip install -r" in str(err.value) and str(req) in str(err.value)
    assert not unmet(read_requirements(REPO / "requirements.txt")), "the test venv itself must satisfy the pack"


@pytest.mark.slow
def test_comfyui_lists_the_pack_as_import_failed_and_names_the_missing_package(tmp_path):
    # A real ComfyUI whose Python lacks segment-anything (hidden from import and from package
    # metadata by a sitecustomize): start-up carries on, the pack is "(IMPORT FAILED)", and the
    # log names the package and the command that installs it.
    from devkit.comfyui import start_comfyui, stop_comfyui

    server = start_comfyui(tmp_path / "base", env=hiding("segment-anything:segment_anything"))
    try:
        info = server.object_info()
        log = server.log.read_text()
    finally:
        stop_comfyui(server)
    assert "KSampler" in info and not any(name.startswith("CIELR") for name in info)
    assert "(IMPORT FAILED)" in log and "comfyui-cielr" in log.split("(IMPORT FAILED)")[1].splitlines()[0]
    # ComfyUI's own extras log the same way (nodes_audio.py without torchaudio): take the pack's line
    reason = next(line for line in log.splitlines() if "Cannot import" in line and "comfyui-cielr" in line)
    assert "segment-anything>=1.0 (not installed)" in reason
    assert "-m pip install -r" in reason and "requirements.txt" in reason


def test_missing_optional_package_is_reported_when_used(tmp_path):
    done = run_python(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        for name in ("groundingdino", "segment_anything"):
            sys.modules[name] = None  # as if not installed
        from cielr_core.errors import CheckpointError, MissingDependencyError
        from cielr_core.perception import load_grounding_dino, load_sam
        for load, args in ((load_grounding_dino, ("x.pth", "bert")), (load_sam, ("x.pth",))):
            try:
                load(*args)
            except MissingDependencyError as e:
                print("OK", e)
            except CheckpointError as e:
                print("CHECKED", e)
    """)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(("OK", "CHECKED"))]
    assert len(lines) == 2, done.stdout + done.stderr
    # GroundingDINO runs on transformers: without groundingdino-py the file itself is what gets checked
    assert lines[0].startswith("CHECKED") and "x.pth" in lines[0] and "does not exist" in lines[0]
    assert lines[1].startswith("OK") and "segment-anything" in lines[1] and "pip install" in lines[1]


@functools.cache
def registered_nodes() -> list[str]:
    """The node ids the pack registers in a Python that has every package."""
    done = run_python(f"""
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("cielr_pack", {str(REPO / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO)!r}])
        pack = importlib.util.module_from_spec(spec); sys.modules["cielr_pack"] = pack
        spec.loader.exec_module(pack)
        print(json.dumps(sorted(pack.NODE_CLASS_MAPPINGS)))
    """)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def group_message(group_name: str, package: str) -> list[str]:
    """What the error of a feature whose optional group lacks ``package`` must say."""
    group = next(g for g in OPTIONAL_GROUPS if g.name == group_name)
    return [f"'{package}'", f"optional group '{group_name}'",
            f'"{sys.executable}" -m pip install -r "{group.requirements}"']


# (packages hidden, the local LLM model it runs: a Hugging Face folder or a .gguf file)
LOCAL_LLM_CASES = {
    # diffusers too: no node needs it (ComfyUI samples with its own models), so every node registers without it
    "xgrammar": (("xgrammar:xgrammar", "diffusers:diffusers"), "folder"),
    # a .gguf file runs on llama.cpp when llama-cpp-python is there: hide it too, so transformers reads the file
    "gguf": (("gguf:gguf", "llama-cpp-python:llama_cpp"), "gguf"),
    "accelerate": (("accelerate:accelerate", "llama-cpp-python:llama_cpp"), "gguf"),
}


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(LOCAL_LLM_CASES))
def test_comfyui_without_a_local_llm_package_registers_every_node_and_the_llm_node_says_what_to_install(
        tmp_path, package, tiny_chat_model, smollm2_gguf):
    from devkit.comfyui import execution_error, link_model, start_comfyui, stop_comfyui

    hidden, kind = LOCAL_LLM_CASES[package]
    base = tmp_path / "base"
    model = smollm2_gguf if kind == "gguf" else tiny_chat_model
    link_model(base / "models", "LLM", model)
    server = start_comfyui(base, env=hiding(*hidden))
    try:
        info = server.object_info()
        prompt = {
            "1": {"class_type": "CIELRLLMLocal", "inputs": {"model": model.name, "device": "cpu", "temperature": 0.0,
                                                          "seed": 0, "max_tokens": 64}},
            "2": {"class_type": "CIELRProposeLabels", "inputs": {"llm": ["1", 0], "instruction": "Remove the cup.",
                                                               "extra_labels": ""}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        }
        error = execution_error(server.run(prompt))
    finally:
        stop_comfyui(server)
    assert sorted(n for n in info if n in registered_nodes()) == registered_nodes(), "a node is missing"
    assert error is not None and error["node_type"] == "CIELRLLMLocal", error
    for part in group_message("local-llm", package):
        assert part in error["exception_message"], error["exception_message"]


def test_without_diffusers_the_command_line_engine_says_what_to_install(tmp_path):
    """The command line's engine needs diffusers (that every node registers without it is checked with the
    xgrammar case above)."""
    from cielr_core.scene import Scene, scene_to_json
    from tests.conftest import CIEBENCH

    env = hiding("diffusers:diffusers")
    photo = CIEBENCH / "0" / "0.png"
    (tmp_path / "scene.json").write_text(scene_to_json(Scene(796, 597)))
    (tmp_path / "plan.json").write_text('{"actions": [{"op": "remove", "targets": [1]}]}')  # checked later
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text("{}")
    done = subprocess.run(
        [sys.executable, "-m", "cielr_core", "edit", str(photo), "remove it", "-o", str(tmp_path / "out.png"),
         "--scene", str(tmp_path / "scene.json"), "--plan", str(tmp_path / "plan.json"),
         "--inpaint", str(tmp_path / "sd")],
        cwd=REPO, env={**os.environ, **env, "PYTHONPATH": os.pathsep.join((env["PYTHONPATH"], str(REPO)))},
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    for part in group_message("diffusers", "diffusers"):
        assert part in done.stderr, done.stderr
