"""A fresh `git clone` with nothing beside it passes its own tests: the repository carries every file
its tests, benchmarks and scripts read."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

# A path outside the repository, unless an environment variable chose it.
OUTSIDE = re.compile(r"""\.\./shared|\.parents?(?:\[\d\])? ?/ ?["']shared["']|REPO\.parent|parents\[[2-9]\]""")


def test_tests_benchmarks_and_scripts_read_nothing_outside_the_repository():
    hits = []
    for folder in ("tests", "devkit", "benchmarks", "scripts", ".ci"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix not in {".py", ".sh", ""} or not path.is_file() or "data" in path.parts:
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line) and "environ" not in line and path.name != "test_fresh_clone.py":
                    hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


@pytest.mark.slow
def test_a_fresh_clone_collects_and_passes_with_nothing_beside_it(tmp_path):
    """The README's test command in a clone with no shared folder beside it: collection of the whole suite,
    then a test that reads the carried benchmark photos."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    clone = tmp_path / "empty" / "comfyui-cielr"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    assert not any((folder / "shared").exists() for folder in clone.parents[:2])
    # The clone must reuse this run's environment, never rebuild it under the running suite.
    stamp = subprocess.run(["bash", "scripts/env_stamp.sh", "test"], cwd=clone, capture_output=True, text=True,
                           check=True).stdout.strip()
    venv = os.environ.get("CIELR_VENV")
    assert venv, "run the suite through scripts/test.sh"
    built = Path(venv, ".cielr-stamp").read_text().strip()
    assert stamp == built, (f"HEAD {head.stdout.strip()[:8]} has other requirements than the environment "
                            "this suite runs in: commit requirement changes before running this test")
    env = {k: v for k, v in os.environ.items() if k != "CIELR_DATA"}

    def readme_test_command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "scripts/test.sh", "-q", "-p", "no:cacheprovider", *args], cwd=clone,
                              env=env, capture_output=True, text=True, timeout=900, check=False)

    collected = readme_test_command("--collect-only")
    assert collected.returncode == 0, collected.stdout[-4000:] + collected.stderr[-4000:]
    assert "error" not in collected.stdout.lower().split("collected")[-1], collected.stdout[-4000:]
    count = int(re.search(r"(\d+) tests? collected", collected.stdout).group(1))
    assert count > 500, collected.stdout[-2000:]

    ran = readme_test_command("tests/test_datasets.py")
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert re.search(r"\d+ passed", ran.stdout) and "failed" not in ran.stdout, ran.stdout[-2000:]
