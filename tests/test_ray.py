"""bench and batch on a local Ray cluster: two worker processes on this machine, the oracle with the
tiny diffusers engine, and the pipeline with the tiny perception models (on one line; the others carry
their scene) and the scripted LLM server, over the bundled ciebench-dev samples. The tables equal the
single-process run's; a worker killed mid-run loses no sample and nothing is written twice; a second
run over the same folder does no work.

The command line runs in this process (the Ray driver), so writes are counted where they happen."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from cielr_core.__main__ import main
from tests.conftest import CIEBENCH
from tests.test_bench import answer_by_schema, deterministic_parts, read_csv
from tests.test_cli import FAST, PERMISSIVE, model_flags, models_dir  # noqa: F401  (module fixture)

ORACLE = ["--oracle", "--limit", "8", "--sizes", "256", *FAST, "-q"]  # 8 entries: "5" is a dataset problem
KEYS = ("0", "1", "2", "3", "4", "6")  # ciebench-dev samples; "5" has a mask of another size
LINES = len(KEYS)


@pytest.fixture(scope="module")
def ray_cluster():
    """Ray on this machine with two CPUs, so two one-CPU workers, started as the command line starts it
    (loopback only, no dashboard, the library shipped with the job)."""
    from cielr_core.runs import cluster

    ray = cluster.import_ray(local=True)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    # Ray kills workers when the whole machine runs low on memory; other jobs share this one, and the
    # kill under test is this module's own
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
                 logging_level=logging.ERROR, runtime_env=cluster.job_env())
    finally:
        del os.environ["RAY_memory_monitor_refresh_ms"]
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def count_writes(monkeypatch, module, name: str) -> Counter:
    """Count the calls of a writer (by its first argument) in the driver, and let them through."""
    counts: Counter = Counter()
    real = getattr(module, name)

    def counting(path, *args, **kwargs):
        counts[Path(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return counts


class Killer(threading.Thread):
    """Kills one busy Ray worker process (SIGKILL) once ``ready()`` says enough results are in."""

    def __init__(self, ready):
        super().__init__(daemon=True)
        self.ready, self.killed, self.stop = ready, None, threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            if not self.ready():
                continue
            workers = []
            for p in psutil.Process().children(recursive=True):
                try:
                    title = " ".join(p.cmdline())
                except psutil.Error:
                    continue
                if "ray::RayWorker" in title:
                    workers.append((".run" not in title, p))  # a worker that is running a sample first
            if workers:
                _, victim = sorted(workers, key=lambda w: w[0])[0]
                os.kill(victim.pid, signal.SIGKILL)
                self.killed = victim.pid
                return


def last_session(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["sessions"][-1]


# ------------------------------------------------------------------------------- bench

def bench(out: Path, models: Path, *extra: str) -> int:
    return main(["bench", str(CIEBENCH), "--out", str(out), "--models-dir", str(models), "--inpaint", "tiny-sd",
                 *ORACLE, *extra])


@pytest.fixture(scope="module")
def bench_single(tmp_path_factory, models_dir):  # noqa: F811
    out = tmp_path_factory.mktemp("bench") / "single"
    assert bench(out, models_dir) == 0
    return out


def records_written(counts: Counter) -> Counter:
    return Counter({p.stem: n for p, n in counts.items() if p.parent.name == "samples"})


def test_bench_on_ray_equals_one_process_survives_a_killed_worker_and_a_second_run_does_no_work(
        tmp_path, ray_cluster, models_dir, bench_single, monkeypatch):  # noqa: F811
    """One Ray run with a worker killed mid-run: each run starts workers that import torch and diffusers
    (most of a run's time), so the run without a kill would check nothing this one does not."""
    from cielr_core.bench import runner
    from cielr_core.runs.cluster import DEPTH

    writes = count_writes(monkeypatch, runner, "write_atomic")
    killer = Killer(lambda: 2 <= sum(records_written(writes).values()) < 6)
    killer.start()
    out = tmp_path / "ray"
    try:
        assert bench(out, models_dir, "--ray", "auto", "--workers", "2") == 0
    finally:
        killer.stop.set()
    assert killer.killed is not None, "no worker was running when the run was half done"
    session = last_session(out)
    # two workers (and the killed one's restart, if it came back before the end), each loading the models once
    pids = [w["pid"] for w in session["workers"]]
    assert 2 <= len(set(pids)) == len(pids) <= 3 and os.getpid() not in pids and killer.killed in pids
    assert all(w["load_seconds"] > 0 and w["node"] == "127.0.0.1" for w in session["workers"])
    # 7 samples, and the dataset problem's record; only the killed worker's samples were handed out again
    assert (session["ran"], session["lost"]) == (7, 0) and 1 <= session["retried"] <= DEPTH
    assert records_written(writes) == Counter({str(i): 1 for i in range(8)})  # every sample, each once
    assert deterministic_parts(out) == deterministic_parts(bench_single)
    # again over the same folder: nothing runs, no worker starts, the tables stay
    writes.clear()
    assert bench(out, models_dir, "--ray", "auto", "--workers", "2") == 0
    session = last_session(out)
    assert (session["ran"], session["skipped"], session["workers"]) == (0, 7, [])
    assert records_written(writes) == Counter({"5": 1})  # the dataset problem's record is written each run
    assert deterministic_parts(out) == deterministic_parts(bench_single)


# ------------------------------------------------------------------------------- batch

def oracle_scene(key: str) -> str:
    """The scene bench --oracle edits for a ciebench-dev sample (its ground-truth mask), as JSON."""
    from cielr_core.bench.datasets import load_sample, read_dataset
    from cielr_core.bench.oracle import oracle_scene_and_plan
    from cielr_core.scene import scene_to_json

    sample = next(s for s in read_dataset(CIEBENCH).samples if s.id == key)
    return scene_to_json(oracle_scene_and_plan(load_sample(sample))[0])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Six ciebench-dev photos with their instructions, and one line that is a manifest problem. The
    first line perceives (seconds a line, even with the tiny detector); the others
    carry their scene, so the LLM writes their plan and the edit runs without perception."""
    data = json.loads((CIEBENCH / "data.json").read_text())
    lines = [{"id": f"s{i}", "image": str(CIEBENCH / data[k]["image path"]), "instruction": data[k]["instruction"]}
             for i, k in enumerate(KEYS)]
    for i, line in enumerate(lines[1:], 1):
        line["scene"] = json.loads(oracle_scene(KEYS[i]))
    lines.insert(3, {"id": "broken", "image": "no-such-photo.png", "instruction": "remove it"})
    path = tmp_path_factory.mktemp("manifest") / "edits.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def batch(manifest: Path, out: Path, models: Path, llm_url: str, *extra: str) -> int:
    return main(["batch", str(manifest), "--out", str(out), *model_flags(models), *PERMISSIVE, *FAST,
                 "--max-rounds", "1", "--llm-url", llm_url, "--llm-model", "scripted", "-q", *extra])


def batch_tables(out: Path) -> dict:
    """What must not depend on where the lines ran: the per-line table without times, the summary
    without its time section, and each line's result without its times."""
    md = (out / "summary.md").read_text()
    results = {}
    for folder in sorted(p for p in out.iterdir() if (p / "result.json").is_file()):
        r = json.loads((folder / "result.json").read_text())
        for varying in ("seconds", "peak_rss_mb", "files"):
            r.pop(varying, None)
        r["actions"] = [re.sub(r", [0-9.]+ s\b", "", line) for line in r["actions"]]  # each action's seconds
        results[folder.name] = r
    return {"results.csv": read_csv(out / "results.csv", ("seconds_", "peak_rss")),
            "summary.md": md[:md.index("## Time per stage")], "results": results}


@pytest.fixture
def batch_single(tmp_path, manifest, models_dir, scripted_server):  # noqa: F811
    answer_by_schema(scripted_server)
    out = tmp_path / "single"
    assert batch(manifest, out, models_dir, scripted_server.base_url) == 0
    return out


def folders_written(counts: Counter) -> Counter:
    return Counter({p.name: n for p, n in counts.items()})


def test_batch_on_ray_equals_one_process_survives_a_killed_worker_and_resumes(
        tmp_path, ray_cluster, manifest, models_dir, scripted_server, batch_single, monkeypatch):  # noqa: F811
    from cielr_core.batch import runner

    tables = batch_tables(batch_single)
    assert list(tables["results"]) == [f"s{i}" for i in range(LINES)]
    assert all(r["status"] == "ok" and r["actions"] for r in tables["results"].values())
    assert tables["results"]["s0"]["labels"] == ["lamp", "tv"]  # the scripted LLM's labels, perceived
    assert "| 4 | broken | image not found: no-such-photo.png |" in tables["summary.md"]
    writes = count_writes(monkeypatch, runner, "write_folder_atomic")
    killer = Killer(lambda: 2 <= sum(writes.values()) < LINES - 1)
    killer.start()
    out = tmp_path / "ray"
    try:
        assert batch(manifest, out, models_dir, scripted_server.base_url, "--ray", "auto", "--workers", "2") == 0
    finally:
        killer.stop.set()
    assert killer.killed is not None, "no worker was running when the run was half done"
    session = last_session(out)
    assert session["retried"] >= 1 and session["lost"] == 0 and session["ran"] == LINES
    assert folders_written(writes) == Counter({f"s{i}": 1 for i in range(LINES)})  # every line, each once
    assert batch_tables(out) == tables
    assert "perceive" in json.loads((out / "s0" / "result.json").read_text())["seconds"]  # in a worker
    for i in range(LINES):  # each folder holds what its result lists
        folder = out / f"s{i}"
        listed = json.loads((folder / "result.json").read_text())["files"]
        assert {"image.png", "mask.png", "scene.json", "preview.png", "plan.json", "report.txt"} <= set(listed)
        assert sorted(p.name for p in folder.iterdir()) == sorted([*listed, "result.json"])
    # a second run over the same folder does no work: no worker, no LLM request, no write
    writes.clear()
    asked = len(scripted_server.requests)
    start = time.monotonic()
    assert batch(manifest, out, models_dir, scripted_server.base_url, "--ray", "auto", "--workers", "2") == 0
    session = last_session(out)
    assert (session["ran"], session["skipped"], session["workers"]) == (0, LINES, [])
    assert not writes and len(scripted_server.requests) == asked and time.monotonic() - start < 60
    assert batch_tables(out) == tables
    # a result left incomplete (a file gone, a result.json cut short) is run again, and only it, here in
    # this process: where the lines ran does not matter to a resume
    (out / "s2" / "mask.png").unlink()
    (out / "s4" / "result.json").write_text((out / "s4" / "result.json").read_text()[:50])
    assert batch(manifest, out, models_dir, scripted_server.base_url) == 0
    session = last_session(out)
    assert (session["ran"], session["skipped"]) == (2, LINES - 2) and sorted(p.name for p in writes) == ["s2", "s4"]
    assert batch_tables(out) == tables
