"""Shared test set-up: offline hub, the real photos carried in tests/data, model fixtures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

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

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CIELR_DATA", REPO / "tests" / "data"))
CIEBENCH = DATA / "ciebench-dev"
CACHE = Path(os.environ.get("CIELR_CACHE", Path.home() / ".cache" / "cielr"))


def load_photo(index: int) -> np.ndarray:
    """A real benchmark photo as RGB uint8 (some files are JPEG data with a .png name)."""
    from PIL import Image

    meta = json.loads((CIEBENCH / "data.json").read_text())[str(index)]
    with Image.open(CIEBENCH / meta["image path"]) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return load_photo(0)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Where full-size random-weight checkpoints are kept between runs (they take seconds to build)."""
    path = CACHE / "test-models"
    path.mkdir(parents=True, exist_ok=True)
    return path
