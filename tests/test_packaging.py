"""What a packager and the Comfy Registry read: pyproject.toml against the registry's rules (as
comfy-cli, which publishes, parses them), the licence, the icon and banner, the publish workflow,
and what .comfyignore leaves out of the published archive."""

from __future__ import annotations

import re
import subprocess
import sys
from fnmatch import fnmatch

import pytest
import yaml
from PIL import Image

from cielr_core.dependencies import OPTIONAL_GROUPS, optional_group, read_requirements
from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
COMFY = PYPROJECT["tool"]["comfy"]
RAW = "https://raw.githubusercontent.com/"
# What ComfyUI and the nodes read at run time: the published archive must hold all of it.
RUNTIME = ("__init__.py", "nodes/bridge.py", "cielr_core/pipeline.py", "cielr_core/settings.toml",
           "example_workflows/cielr_edit.json",
           "requirements.txt", "requirements-local-llm.txt", "requirements-diffusers.txt", "pyproject.toml",
           "LICENSE", "README.md")


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_project_fields_follow_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[._-][A-Za-z0-9]+)*", name)
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    assert PROJECT["description"].strip() and len(PROJECT["description"]) <= 500
    assert PROJECT["urls"]["Repository"].startswith("https://github.com/")
    assert PROJECT["requires-python"].startswith(">=")
    # comfy-cli drops every OS (or accelerator) classifier when one of them is outside its lists
    for c in PROJECT["classifiers"]:
        if c.startswith("Operating System :: "):
            assert c.split(" :: ")[1] in {"Microsoft", "POSIX", "MacOS", "OS Independent"}, c
        if c.startswith("Environment ::"):
            assert c[len("Environment :: "):] in {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc",
                                                   "NPU :: Huawei Ascend", "GPU :: Apple Metal"}, c
    assert re.fullmatch(r"(==|>=|<=|!=|~=|>|<)?\d+\.\d+\.\d+", COMFY["requires-comfyui"])
    assert COMFY["PublisherId"] and COMFY["DisplayName"]


def test_licence_is_apache_and_the_vendored_data_keeps_its_own():
    assert PROJECT["license"] == {"file": "LICENSE"}
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "License :: OSI Approved :: Apache Software License" in PROJECT["classifiers"]
    assert "MIT License" in (REPO / "tests" / "data" / "ciebench-dev" / "LICENSE").read_text()


def requirement_lines(path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def test_dependencies_are_requirements_txt_without_torch():
    # ComfyUI-Manager installs requirements.txt, the registry reads pyproject: they must agree.
    assert PROJECT["dependencies"] == requirement_lines(REPO / "requirements.txt")
    names = {r.name.lower() for r in read_requirements(REPO / "requirements.txt")}
    assert not names & {"torch", "torchvision", "torchaudio"}, "a torch line can replace a user's CUDA build"


def test_each_optional_group_is_a_requirements_file_and_an_extra():
    extras = PROJECT["optional-dependencies"]
    assert sorted(extras) == sorted(g.name for g in OPTIONAL_GROUPS)
    core = {r.name for r in read_requirements(REPO / "requirements.txt")}
    for group in OPTIONAL_GROUPS:
        assert group.requirements.parent == REPO and group.requirements.name == f"requirements-{group.name}.txt"
        assert extras[group.name] == requirement_lines(group.requirements), group.name
        assert not set(group.packages()) & core, f"{group.name} repeats a core requirement"
    assert {"xgrammar", "gguf", "accelerate"} <= set(optional_group("xgrammar").packages())
    assert optional_group("diffusers").name == "diffusers" and optional_group("numpy") is None


@pytest.mark.parametrize("field, square", [("Icon", True), ("Banner", False)])
def test_icon_and_banner_are_files_of_this_repository(field, square):
    owner_repo = PROJECT["urls"]["Repository"].removeprefix("https://github.com/")
    url = COMFY[field]
    assert url.startswith(f"{RAW}{owner_repo}/main/"), url
    path = url.removeprefix(f"{RAW}{owner_repo}/main/")
    assert path in tracked(), f"{path} is not committed, so the URL would answer 404"
    with Image.open(REPO / path) as im:
        assert im.format in {"PNG", "JPEG", "GIF"}
        if square:
            assert im.width == im.height <= 400
        else:
            assert 2.0 <= im.width / im.height <= 2.7 and im.width <= 1600


def test_includes_only_name_folders_git_would_leave_out():
    # The archive is every tracked file (minus .comfyignore) plus `includes`: a tracked folder
    # listed there changes nothing.
    files = tracked()
    for entry in COMFY.get("includes", []):
        assert (REPO / entry).exists(), entry
        assert not any(f == entry or f.startswith(entry.rstrip("/") + "/") for f in files), entry


def test_comfyignore_keeps_everything_the_pack_runs():
    patterns = [p.strip() for p in (REPO / ".comfyignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    files = tracked()

    def ignored(path: str) -> bool:
        return any(path.startswith(p) if p.endswith("/") else fnmatch(path, p) for p in patterns)

    for path in RUNTIME:
        assert path in files and not ignored(path), path
    assert ignored("tests/data/ciebench-dev/data.json") and ignored("benchmarks/common.py")
    shipped = [f for f in files if not ignored(f)]
    assert all(not f.startswith(("tests/", "benchmarks/")) for f in shipped)


def test_publish_workflow_runs_the_registry_action_on_a_version_change():
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "publish.yml").read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads a bare `on` key as true
    assert on["push"]["branches"] == ["main"] and on["push"]["paths"] == ["pyproject.toml"]
    assert "workflow_dispatch" in on
    (job,) = wf["jobs"].values()
    owner = PROJECT["urls"]["Repository"].removeprefix("https://github.com/").split("/")[0]
    assert owner in job["if"], "forks have no token and must skip the job"
    steps = {s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    assert "actions/checkout" in steps
    publish = steps["Comfy-Org/publish-node-action"]
    assert publish["with"]["personal_access_token"] == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"
