"""A real ComfyUI server (the copy setup_env.sh installs) with this pack linked into custom_nodes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from devkit import COMFYUI, REPO, SETUP_HINT, SetupError, free_port, stop_process


def link_model(models: Path, sub: str, path: Path) -> Path:
    """A link to the model file or folder ``path`` in the sub-folder ``sub`` of the ComfyUI models folder
    ``models``, where users put such models (a models folder never holds copies)."""
    folder = models / sub
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / path.name
    if not link.exists():
        link.symlink_to(path, target_is_directory=path.is_dir())
    return link


@dataclass
class ComfyServer:
    url: str
    base: Path  # --base-directory: models/, input/, output/, custom_nodes/
    log: Path
    process: subprocess.Popen

    def object_info(self) -> dict:
        return requests.get(f"{self.url}/object_info", timeout=60).json()

    def queue(self, prompt: dict) -> str:
        r = requests.post(f"{self.url}/prompt", json={"prompt": prompt, "client_id": uuid.uuid4().hex}, timeout=60)
        assert r.status_code == 200, f"prompt rejected: {r.text[:2000]}"
        return r.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """The history entry once the job has finished (successfully or not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"ComfyUI died:\n{self.log.read_text()[-4000:]}"
            try:
                entry = requests.get(f"{self.url}/history/{prompt_id}", timeout=30).json().get(prompt_id)
            except requests.Timeout:  # a server busy loading a model (or a loaded machine) answers late
                continue
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"]["completed"] or entry["status"].get("status_str") == "error"):
                return entry
            time.sleep(0.05)  # a history read is cheap; the suite waits on hundreds of jobs
        raise TimeoutError(f"job {prompt_id} did not finish in {timeout} s:\n{self.log.read_text()[-4000:]}")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        return self.wait(self.queue(prompt), timeout)


def describe(error: dict | None) -> str:
    """An execution_error as a readable assertion message."""
    if not error:
        return "no error"
    return (f"{error.get('node_type')} (node {error.get('node_id')}): {error.get('exception_message')}\n"
            + "".join(error.get("traceback", []))[-3000:])


def execution_error(entry: dict) -> dict | None:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


# Stand-in nodes: other packs' types (SEGS, BBOX), text encoders of each family, a sampling recorder
TEST_NODES = REPO / "devkit" / "comfy_nodes"


def start_comfyui(base: Path, timeout: float = 180, test_nodes: bool = False,
                  env: dict[str, str] | None = None) -> ComfyServer:
    """A server over ``base``; ``env`` adds to (or overrides) the environment it starts with."""
    if not (COMFYUI / "main.py").is_file():
        raise SetupError(f"ComfyUI is not installed at {COMFYUI}: {SETUP_HINT}")
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    links = {"comfyui-cielr": REPO, **({"cielr-test-nodes": TEST_NODES} if test_nodes else {})}
    for name, target in links.items():
        link = base / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    port = free_port()
    log = base / "comfyui.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--disable-auto-launch", "--disable-api-nodes", "--base-directory", str(base)],
        cwd=COMFYUI, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = ComfyServer(f"http://127.0.0.1:{port}", base, log, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"ComfyUI exited at start-up:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}/object_info", timeout=5).ok:
                return server
        except requests.RequestException:
            time.sleep(0.5)
    process.kill()
    raise SetupError(f"ComfyUI did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def stop_comfyui(server: ComfyServer) -> None:
    stop_process(server.process, timeout=20)


def import_comfyui() -> None:
    """Make ComfyUI's packages (``comfy_api``, ``comfy``, ``folder_paths``) importable in this process, on the
    CPU, for tests that run node classes without a server. ComfyUI's folder goes after the repository, so
    the pack's ``nodes`` package wins over ComfyUI's nodes.py."""
    if not (COMFYUI / "comfy_api").is_dir():
        raise SetupError(f"ComfyUI is not installed at {COMFYUI}: {SETUP_HINT}")
    if str(COMFYUI) not in sys.path:
        sys.path.append(str(COMFYUI))
    import comfy.cli_args  # with comfy.options.args_parsing off (the default): no command line is parsed

    comfy.cli_args.args.cpu = True
