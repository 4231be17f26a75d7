"""scripts/device_check.sh, checked where no GPU is: it parses, refuses clearly without CUDA, runs exactly
the tests marked ``cuda`` (which the default run leaves out), and its timed action runs on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "device_check.sh"
ENV = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_script_parses():
    done = run("bash", "-n", str(SCRIPT))
    assert done.returncode == 0, done.stderr


def test_without_cuda_it_stops_with_a_sentence():
    import torch

    assert not torch.cuda.is_available(), "this test describes a machine without a CUDA GPU"
    done = run("bash", str(SCRIPT))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "device_check: no CUDA GPU is visible" in done.stderr and "machine with a CUDA GPU" in done.stderr
    assert "== tests" not in done.stdout  # nothing ran
    assert run("bash", str(SCRIPT), "--bogus").returncode == 2


def collected(*args: str) -> list[str]:
    done = run(sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args)
    assert done.returncode in (0, 5), done.stdout[-3000:] + done.stderr[-3000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_it_runs_exactly_the_cuda_tests_and_the_default_run_leaves_them_out():
    command = SCRIPT.read_text()
    target = re.search(r"pytest (\S+) -m cuda", command).group(1)
    selected = collected(target, "-m", "cuda")
    assert len(selected) >= 6 and all(t.startswith("tests/test_cuda.py::") for t in selected)
    assert collected(target) == [], "the default run must leave the CUDA tests out"
    # every test marked cuda lives where the script looks
    mark = re.compile(r"^(pytestmark = .*|\s*@)pytest\.mark\.cuda\b", re.MULTILINE)
    marked = [p.name for p in (REPO / "tests").glob("test_*.py") if mark.search(p.read_text())]
    assert marked == ["test_cuda.py"], marked


@pytest.mark.slow
def test_the_timed_action_runs_on_the_cpu(tmp_path):
    out = tmp_path / "figures.json"
    done = run(sys.executable, str(REPO / "benchmarks" / "gpu_action.py"), "--device", "cpu", "--tiny", "--size", "64",
               "--working-size", "64", "--steps", "1", "--repeats", "1", "--dtype", "float32", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "device: CPU" in done.stdout and "outside the mask unchanged: True" in done.stdout
    figures = json.loads(out.read_text())
    (only,) = figures["runs"]
    assert figures["size"] == 64 and only["working_size"] == 64 and only["outside_unchanged"] and only["inside_changed"]
    assert only["mean_s"] > 0 and only["peak_gib"] is None
    cuda = run(sys.executable, str(REPO / "benchmarks" / "gpu_action.py"), "--tiny")
    assert cuda.returncode == 2 and "no CUDA device" in cuda.stderr
