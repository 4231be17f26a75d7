"""The many-sample machinery without a cluster: atomic writes (an interrupted write leaves nothing a
resumed run takes as finished), result folders that are incomplete are run again, the batch manifest,
the in-process work loop, and Ray as an optional extra whose absence costs only --ray."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cielr_core.batch.manifest import read_manifest
from cielr_core.batch.results import RESULT_FILE, LineResult, folder_files, read_result
from cielr_core.runs import files as run_files
from cielr_core.runs.files import remove_leftovers, safe_name, write_atomic, write_folder_atomic
from cielr_core.runs.pool import Task, run_tasks
from cielr_core.runs.progress import RunProgress
from tests.conftest import CIEBENCH, REPO


def finished_folder(folder: Path, line_id: str = "a", payload: bytes = b"x" * 1000) -> dict[str, bytes]:
    result = LineResult(id=line_id)
    return folder_files(result, {"image.png": payload, "report.txt": b"done\n"})


# ------------------------------------------------------------------------------- atomic writes

def test_an_interrupted_folder_write_leaves_nothing_a_resumed_run_takes_as_finished(tmp_path, monkeypatch):
    folder = tmp_path / "out" / "a"
    content = finished_folder(folder)
    real = run_files._write
    calls = []

    def failing(path, data):  # the disk fills up (or the process is stopped) at the second file
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(run_files, "_write", failing)
    with pytest.raises(OSError, match="No space left"):
        write_folder_atomic(folder, content)
    monkeypatch.setattr(run_files, "_write", real)
    assert not folder.exists() and read_result(folder, "a") is None
    assert list((tmp_path / "out").iterdir()) == []  # the temporary folder went with the error
    write_folder_atomic(folder, content)
    assert read_result(folder, "a") is not None
    assert sorted(p.name for p in folder.iterdir()) == ["image.png", "report.txt", RESULT_FILE]


KILLED_WRITER = """
import sys, time
sys.path.insert(0, {repo!r})
from cielr_core.runs import files
real = files._write
def slow(path, data):
    real(path, data)
    print(path.name, flush=True)
    time.sleep(0.2)
files._write = slow
files.write_folder_atomic(files.Path({folder!r}), {{f"part{{i}}.bin": b"y" * 4096 for i in range(50)}})
"""


def test_a_writer_killed_mid_folder_leaves_only_a_leftover_the_next_run_removes(tmp_path):
    """A real interruption: the writing process gets SIGKILL after a few of its files."""
    out = tmp_path / "out"
    folder = out / "a"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER.format(repo=str(REPO), folder=str(folder))],
                            stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # three files written, 47 to go
            assert proc.stdout.readline().startswith("part")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    assert not folder.exists() and read_result(folder, "a") is None
    leftovers = list(out.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".a.tmp-") and len(list(leftovers[0].iterdir())) >= 3
    assert remove_leftovers(out) == leftovers and list(out.iterdir()) == []


def test_replacing_a_folder_and_writing_a_file_are_all_or_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "a"
    write_folder_atomic(folder, finished_folder(folder, payload=b"old"))
    monkeypatch.setattr(run_files, "_write", lambda path, data: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        write_folder_atomic(folder, finished_folder(folder, payload=b"new"))
    with pytest.raises(OSError):
        write_atomic(tmp_path / "record.json", "{}")
    monkeypatch.undo()
    assert (folder / "image.png").read_bytes() == b"old" and read_result(folder, "a") is not None
    assert not (tmp_path / "record.json").exists() and remove_leftovers(tmp_path) == []
    write_folder_atomic(folder, finished_folder(folder, payload=b"new"))
    assert (folder / "image.png").read_bytes() == b"new" and read_result(folder, "a") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # the old folder is gone too


def test_a_result_folder_missing_or_changing_a_file_is_run_again(tmp_path):
    folder = tmp_path / "a"
    write_folder_atomic(folder, finished_folder(folder))
    assert read_result(folder, "a").files == {"image.png": 1000, "report.txt": 5}
    assert read_result(folder, "b") is None  # another line's id
    (folder / "image.png").write_bytes(b"x" * 10)  # truncated by hand
    assert read_result(folder, "a") is None
    write_folder_atomic(folder, finished_folder(folder))
    (folder / "report.txt").unlink()
    assert read_result(folder, "a") is None
    write_folder_atomic(folder, finished_folder(folder))
    (folder / RESULT_FILE).write_text((folder / RESULT_FILE).read_text()[:40])
    assert read_result(folder, "a") is None


def test_safe_names_never_collide_with_temporary_or_hidden_names():
    assert safe_name("room-1") == "room-1"
    for odd in (".hidden", "..", "a/b", "ä", ""):
        name = safe_name(odd)
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name), name
    assert safe_name("a/b") != safe_name("a_b")


# ------------------------------------------------------------------------------- the manifest

def test_manifest_lines_and_problems(tmp_path):
    (tmp_path / "photo.png").write_bytes((CIEBENCH / "0" / "0.png").read_bytes())
    (tmp_path / "plan.json").write_text('{"actions": [{"op": "remove", "targets": [1]}]}')
    lines = [
        {"id": "a", "image": "photo.png", "instruction": "remove the lamp", "plan": "plan.json"},
        {"image": "photo.png", "instruction": "  replace the sofa  ", "plan": [{"op": "remove", "targets": [2]}]},
        "",
        {"id": 7, "image": "photo.png", "instruction": "x"},
        {"id": "a", "image": "photo.png", "instruction": "again"},
        {"id": "b", "image": "missing.png", "instruction": "x"},
        {"id": "c", "image": "photo.png", "instruction": "x", "imgae": "typo.png"},
        {"id": "d", "image": "photo.png", "instruction": " "},
        {"id": "e", "image": "photo.png", "instruction": "x", "scene": "nowhere.json"},
    ]
    text = "\n".join(json.dumps(x) if x != "" else "" for x in lines) + "\n{not json\n[1, 2]\n"
    (tmp_path / "m.jsonl").write_text(text)
    items, problems = read_manifest(tmp_path / "m.jsonl")
    assert [(i.id, i.line) for i in items] == [("a", 1), ("2", 2), ("7", 4)]
    assert json.loads(items[0].plan)["actions"][0]["op"] == "remove"
    assert json.loads(items[1].plan) == [{"op": "remove", "targets": [2]}]
    assert items[1].instruction == "replace the sofa" and items[2].plan is None
    assert items[0].image == tmp_path / "photo.png" and items[0].to_dict()["line"] == 1
    reasons = {p.line: p.reason for p in problems}
    assert reasons[5] == "the id is already used on line 1"
    assert reasons[6] == "image not found: missing.png"
    assert "imgae: unknown key" in reasons[7]
    assert "the instruction is empty" in reasons[8]
    assert reasons[9] == "scene file not found: nowhere.json"
    assert reasons[10].startswith("not a JSON object") and reasons[11] == "not a JSON object but a list"


# ------------------------------------------------------------------------------- the work loop

class Doubler:
    status = None
    made = 0

    def __init__(self):
        Doubler.made += 1

    def run(self, payload):
        return payload * 2

    def info(self):
        return {"load_seconds": 0.0}

    def close(self):
        pass


def test_the_local_loop_makes_one_worker_and_delivers_every_task_once():
    delivered = []
    Doubler.made = 0
    progress = RunProgress(5, enabled=False, desc="t")
    stats = run_tasks([Task(str(i), i) for i in range(5)], Doubler, lambda t, r: delivered.append((t.key, r)) or r == 4,
                      progress)
    assert delivered == [(str(i), 2 * i) for i in range(5)] and Doubler.made == 1
    assert (stats.ran, stats.retried, progress.ok, progress.failed) == (5, 0, 4, 1)
    assert run_tasks([], Doubler, lambda t, r: False, progress).workers == [] and Doubler.made == 1


# ------------------------------------------------------------------------------- Ray is optional

def test_ray_is_an_extra_and_only_the_cluster_module_imports_it():
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ray"]
    lines = [x.split("#")[0].strip() for x in (REPO / "requirements-ray.txt").read_text().splitlines()]
    assert extra == [x for x in lines if x]
    assert "-r requirements-ray.txt" in (REPO / "requirements-test.txt").read_text().splitlines()
    importers = sorted(str(p.relative_to(REPO)) for p in list((REPO / "cielr_core").rglob("*.py"))
                       + list((REPO / "nodes").rglob("*.py")) + [REPO / "__init__.py"]
                       if re.search(r"^\s*(import ray|from ray)\b", p.read_text(), re.M))
    assert importers == ["cielr_core/runs/cluster.py"]


def test_without_ray_only_ray_is_missing(tmp_path, tiny_inpaint_pipeline_dir, monkeypatch, capsys):
    """In this process with Ray made unimportable, as when it is not installed (that no module imports it
    at the top, where this process would have it already, is the test above): child processes would
    import torch and diffusers again for the same two commands."""
    from cielr_core.__main__ import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails; importlib.util.find_spec("ray") is None
    args = ["bench", str(CIEBENCH), "--oracle", "--limit", "1", "--inpaint", str(tiny_inpaint_pipeline_dir), "--steps",
            "1", "--cfg", "1", "--working-size", "64", "--context", "16", "--sizes", "256", "-q"]
    start = time.monotonic()
    assert main([*args, "--out", str(tmp_path / "ray"), "--ray", "auto"]) == 1 and time.monotonic() - start < 120
    err = capsys.readouterr().err
    assert "--ray needs Ray, which is not installed" in err
    assert f'-m pip install -r "{REPO / "requirements-ray.txt"}"' in err
    assert not (tmp_path / "ray").exists()  # refused before anything was written
    assert main([*args, "--out", str(tmp_path / "local")]) == 0, capsys.readouterr().err[-2000:]
    assert json.loads((tmp_path / "local" / "summary.json").read_text())["samples"]["ok"] == 1


def test_the_readme_describes_the_batch_output_as_the_help_does():
    from cielr_core.batch import OUTPUT_LAYOUT

    assert OUTPUT_LAYOUT in (REPO / "README.md").read_text()
