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


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; runs only when selected (-m cuda, "
                                       "scripts/device_check.sh)")


def pytest_collection_modifyitems(config, items):
    """Leave out the CUDA tests unless ``-m`` asks for them, and group tests for pytest-xdist."""
    if "cuda" not in (config.getoption("markexpr", "") or ""):
        cuda = [item for item in items if item.get_closest_marker("cuda")]
        if cuda:
            config.hook.pytest_deselected(items=cuda)
            items[:] = [item for item in items if not item.get_closest_marker("cuda")]
    if getattr(config.option, "loadgroup", False):  # in an xdist worker of a --dist loadgroup run
        browser = {module(item) for item in items if {"comfyui", "browser"} <= set(item.fixturenames)}
        for item in items:
            group = xdist_group(item, browser)
            if group:
                set_group(item, group)


def module(item) -> str:
    return item.nodeid.split("::")[0]


def set_group(item, group: str) -> None:
    """What xdist does for an ``xdist_group`` mark: the group as a suffix of the node id, which its
    loadgroup scheduler reads. (pytest-xdist 3.8 writes ``item._nodeid``, which pytest 9 no longer
    reads, so its marks group nothing there.)"""
    nodeid = f"{item.nodeid}@{group}"
    if hasattr(item, "_id"):  # pytest >= 9
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid


def xdist_group(item, browser_modules: set[str]) -> str | None:
    """Tests that share an expensive fixture run in one pytest-xdist worker (``--dist loadgroup``), so it
    is set up once: the tests of the session ComfyUI server in two groups, the modules that drive it
    from the browser and the others (each worker that runs one starts its own server: the server's
    tests are half the suite's time, too much for one worker), and the tests of a module with a
    module-scoped fixture of its own (a server, a built model) in the module's group. An
    ``xdist_group`` mark on a test names its group."""
    mark = item.get_closest_marker("xdist_group")
    if mark:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    if "comfyui" in item.fixturenames:
        return "comfyui-browser" if module(item) in browser_modules else "comfyui"
    for defs in item._fixtureinfo.name2fixturedefs.values():
        if any(d.scope == "module" and d.baseid == module(item) for d in defs):
            return module(item)
    return None


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return load_photo(0)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Where random-weight checkpoints are kept between runs (they take seconds to build)."""
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
