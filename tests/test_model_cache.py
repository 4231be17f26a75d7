"""The test-model cache (devkit/model_cache.py): keyed by the builder's source, built once across
processes, never seen half-built, resumed after a killed build, older keys pruned."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from devkit.model_cache import USED, cached_build, prune, source_key
from tests.conftest import REPO

# Two processes ask for the same set at once; the build is slow enough for them to overlap.
_RACE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from devkit.model_cache import cached_build

def build(out):
    with open(Path(sys.argv[2]) / "builds.log", "a") as log:
        log.write("build\\n")
    time.sleep(2)
    (out / "weights.bin").write_bytes(b"x" * 1000)

print(cached_build(Path(sys.argv[2]), "race", ("builder v1",), build))
"""


def test_a_set_is_built_once_and_rebuilt_only_when_its_builder_changes(tmp_path):
    builds = []

    def build(out):
        builds.append(out)
        (out / "model.bin").write_text(str(len(builds)))

    first = cached_build(tmp_path, "tiny", ("def build(): v1",), build)
    assert first.name == f"tiny-{source_key('tiny', 'def build(): v1')}" and (first / "model.bin").read_text() == "1"
    assert cached_build(tmp_path, "tiny", ("def build(): v1",), build) == first and len(builds) == 1
    other = cached_build(tmp_path, "other", ("def build(): v1",), build)  # another set: its own folder
    changed = cached_build(tmp_path, "tiny", ("def build(): v2",), build)
    assert len({first, other, changed}) == 3 and len(builds) == 3
    assert (first / "model.bin").read_text() == "1", "a new key never touches the old set"


def test_source_files_are_hashed_by_content(tmp_path):
    source = tmp_path / "builder.py"
    source.write_text("v1")
    key = source_key(source)
    assert source_key(source) == key and source_key("v1") != source_key("v1", "v2")
    source.write_text("v2")
    assert source_key(source) != key


def test_a_failed_build_leaves_no_set_and_the_next_build_resumes(tmp_path):
    def killed(out):
        (out / "first.bin").write_text("done")
        raise KeyboardInterrupt  # killed after one file

    with pytest.raises(KeyboardInterrupt):
        cached_build(tmp_path, "resumable", ("v1",), killed)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("resumable-")], "half a set became visible"
    seen = []

    def resume(out):
        seen.append(sorted(p.name for p in out.iterdir()))
        (out / "second.bin").write_text("done")

    folder = cached_build(tmp_path, "resumable", ("v1",), resume)
    assert seen == [["first.bin"]] and sorted(p.name for p in folder.iterdir() if p.name != USED) == [
        "first.bin", "second.bin"]


def test_parallel_processes_build_a_set_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(REPO), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0] and (tmp_path / "builds.log").read_text() == "build\n"


def test_sets_of_older_builders_go_once_unused(tmp_path):
    def build(out):
        (out / "m.bin").write_text("m")

    old = cached_build(tmp_path, "set", ("v1",), build)
    neighbour = cached_build(tmp_path, "set-b", ("v1",), build)  # a set whose name extends this one's
    current = cached_build(tmp_path, "set", ("v2",), build)
    assert old.is_dir(), "an older set used within the last hours stays (another branch may use it)"
    long_ago = time.time() - 4 * 3600
    for folder in (old, neighbour):
        os.utime(folder / USED, (long_ago, long_ago))
    prune(tmp_path, "set", keep=current)
    assert not old.exists() and neighbour.is_dir() and current.is_dir()
