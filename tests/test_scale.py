"""Memory and scale: an 8000 x 6000 photo, 50 objects and a five-action plan within 12 GB on the CPU.

The case runs in a child process (benchmarks/scale.py, tiny random models, 1 sampling step, working
size 64) so its peak memory is its own: ru_maxrss of exactly that child, from os.wait4. A watchdog
also samples the child's RSS and kills it past the limit, so a blow-up fails the test instead of
starving the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 12 * 1000**3  # 12 GB, read strictly (decimal gigabytes)
OBJECTS = 50


def _watch(pid: int, state: dict, stop: threading.Event) -> None:
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss = proc.memory_info().rss
        except psutil.NoSuchProcess:
            return
        state["peak"] = max(state.get("peak", 0), rss)
        if rss > LIMIT:
            state["killed"] = True
            proc.kill()
            return
        time.sleep(0.02)


def _run_case(out: Path, timeout: float = 1200) -> tuple[int, int, dict]:
    """(exit code, peak RSS in bytes, the case's JSON); stdout and stderr go to files in ``out``."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--objects", str(OBJECTS), "--tiny",
           "--steps", "1", "--working-size", "64", "--json", str(out / "case.json"), "--save", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(out / "stdout.txt", "w") as so, open(out / "stderr.txt", "w") as se:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=so, stderr=se)
    state: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(proc.pid, state, stop), daemon=True)
    watcher.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        # wait4, not wait: the rusage of this one child (RUSAGE_CHILDREN would mix in earlier children)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        stop.set()
        watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if state.get("killed"):
        pytest.fail(f"the 8000x6000 / {OBJECTS}-object case passed {LIMIT / 1e9:.0f} GB of RSS and was killed")
    peak = max(usage.ru_maxrss * 1024, state.get("peak", 0))  # ru_maxrss is in KiB on Linux
    case = json.loads((out / "case.json").read_text()) if (out / "case.json").is_file() else {}
    return proc.returncode, peak, case


@pytest.mark.slow
def test_8000x6000_photo_50_objects_five_actions_within_12_gb(tmp_path):
    code, peak, case = _run_case(tmp_path)
    assert code == 0, f"the case failed (exit {code}):\n{(tmp_path / 'stderr.txt').read_text()[-4000:]}"
    assert peak < LIMIT, f"peak RSS {peak / 1e9:.2f} GB is over {LIMIT / 1e9:.0f} GB"
    assert case["objects"] == OBJECTS and case["skipped"] == 0, case["edit_report"]
    assert case["stages"]["relations"]["seconds"] > 0

    inp = np.load(tmp_path / "input.npy", mmap_mode="r")
    out = np.load(tmp_path / "result.npy", mmap_mode="r")
    union = np.load(tmp_path / "union.npy", mmap_mode="r")
    assert out.shape == inp.shape == (6000, 8000, 3) and out.dtype == np.uint8
    assert union.shape == (6000, 8000)
    assert 0 < union.mean() < 0.5  # a real edit, and plenty of image outside it to check
    changed_outside = changed = 0
    for r in range(0, 6000, 500):  # in bands: the test process stays small too
        diff = (np.asarray(inp[r:r + 500]) != np.asarray(out[r:r + 500])).any(axis=-1)
        changed += int(diff.sum())
        changed_outside += int((diff & ~np.asarray(union[r:r + 500])).sum())
    assert changed > 0
    assert changed_outside == 0, f"{changed_outside} pixels outside the action masks changed"
