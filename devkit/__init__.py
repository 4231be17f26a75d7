"""What the tests, the benchmarks and the scripts share, and the product never imports: where the
repository, the carried photos, the model cache and the ComfyUI install are; random-weight models
of the real architectures built in code (nothing is downloaded); and the real servers (ComfyUI,
llama.cpp) started on loopback ports.

tests/ keeps only pytest fixtures over these builders, so benchmarks/ and scripts/ never import
tests/, and tests/ never imports benchmarks/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CIELR_DATA", REPO / "tests" / "data"))
CIEBENCH = DATA / "ciebench-dev"
CACHE = Path(os.environ.get("CIELR_CACHE", Path.home() / ".cache" / "cielr"))
COMFYUI = Path(os.environ.get("CIELR_COMFYUI", CACHE / "ComfyUI"))
SMOLLM2 = Path(os.environ.get("CIELR_SMOLLM2", CACHE / "llm" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
SETUP_HINT = "run the tests through scripts/test.sh (scripts/setup_env.sh installs it)"


class SetupError(RuntimeError):
    """Something the set-up script provides is missing or failed to start."""


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Ask a server to stop; kill it when it has not within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_photo(index: int):
    """A real benchmark photo as RGB uint8 (some files are JPEG data with a .png name)."""
    import numpy as np
    from PIL import Image

    meta = json.loads((CIEBENCH / "data.json").read_text())[str(index)]
    with Image.open(CIEBENCH / meta["image path"]) as im:
        return np.asarray(im.convert("RGB"))
