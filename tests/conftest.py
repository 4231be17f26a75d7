"""Shared test set-up: offline hub, the real photos carried in tests/data, model fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from devkit import CACHE, CIEBENCH, DATA, REPO, load_photo  # noqa: F401  (tests import them from here)

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

pytest_plugins = [
    "tests.fixtures.sam_models",
    "tests.fixtures.gdino_models",
    "tests.fixtures.comfyui",
    "tests.fixtures.llm_servers",
    "tests.fixtures.browser",
    "tests.fixtures.sd_models",
    "tests.fixtures.workflows",
]


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return load_photo(0)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Where full-size random-weight checkpoints are kept between runs (they take seconds to build)."""
    path = CACHE / "test-models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_terminal_summary(terminalreporter):
    """Tests that need another pack's source, which CI cannot fetch, say loudly that they did not run."""
    lines = [r for r in terminalreporter.stats.get("skipped", []) if "NEEDS AN EXTERNAL CHECKOUT" in str(r.longrepr)]
    if lines:
        terminalreporter.write_sep("!", f"{len(lines)} test(s) NOT RUN: they need other packs' source", red=True)
        for report in lines:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
            terminalreporter.write_line(f"{report.nodeid}: {reason}")
