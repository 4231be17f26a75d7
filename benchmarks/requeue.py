"""What a second Queue of the shipped cielr_edit costs when only the image's sampling seed changed.

The shipped example_workflows/cielr_edit.json is converted to the API format by ComfyUI's own frontend
(headless Chromium), with the test models: tiny random GroundingDINO and SAM, the full-size random
SD1.5 checkpoint, and a scripted OpenAI-compatible LLM on loopback (labels, a sufficient scene, a plan
replacing the first object). Then, on the real ComfyUI server:

1. the first Queue runs everything; each node's time comes from the websocket's "executing" events;
2. the second Queue changes only Inpaint Actions' seed (what its "control after generate" does):
   its wall time divided by Inpaint Actions' own time in the first run is the figure (target <= 1.1);
3. for reference, a Queue that also changes the LLM node's seed, as every Queue did when that seed
   re-rolled too: the whole chain after the LLM runs again.

    python benchmarks/requeue.py [--steps 2] [--working-size 128]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common import CACHE, DATA  # (importing it puts the repository on sys.path)

from devkit import REPO, free_port


def scripted_answer(body: dict) -> dict:
    """The scripted LLM: the answer to each of the three questions, as the JSON schema asks."""
    name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name", "")
    if name == "LabelList":
        return {"labels": ["lamp", "speaker", "tv"]}
    if name == "SceneVerdict":
        return {"note": "enough", "sufficient": True, "missing_labels": [], "search_within": None}
    return {"actions": [{"op": "replace", "targets": [first_id(body["response_format"]["json_schema"]["schema"])],
                         "prompt": "a floor lamp"}]}


def first_id(node) -> int | None:
    """The first object id a plan's schema allows (its first integer enum)."""
    if isinstance(node, dict):
        if node.get("enum") and isinstance(node["enum"][0], int):
            return node["enum"][0]
        node = list(node.values())
    if isinstance(node, list):
        return next((found for found in map(first_id, node) if found is not None), None)
    return None


def start_scripted_llm() -> tuple[str, ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            content = json.dumps(scripted_answer(body))
            data = json.dumps({"id": "scripted", "object": "chat.completion", "created": 0, "model": "scripted",
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}/v1", httpd


def api_prompt(server_url: str, widgets: dict) -> dict:
    """The shipped cielr_edit, loaded by the frontend, given the test models and converted by it."""
    from playwright.sync_api import sync_playwright

    from devkit.browser import CHROMIUM_FLAGS, chromium_path

    workflow = json.loads((REPO / "example_workflows" / "cielr_edit.json").read_text())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page()
        page.goto(server_url, timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph", timeout=120_000)
        prompt = page.evaluate("""async ([wf, widgets]) => {
            await window.app.loadGraphData(wf);
            for (const node of window.app.graph._nodes)
                for (const [name, value] of Object.entries(widgets[node.type] || {}))
                    node.widgets.find(w => w.name === name).value = value;
            return (await window.app.graphToPrompt()).output;
        }""", [workflow, widgets])
        browser.close()
    return prompt


def run_timed(server_url: str, prompt: dict) -> tuple[float, dict[str, float], list[str]]:
    """Queue ``prompt`` and follow it: wall seconds, seconds per executed node, cached nodes."""
    import aiohttp

    client = uuid.uuid4().hex

    async def follow():
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"{server_url}/ws?clientId={client}", max_msg_size=0) as ws:
            start = time.perf_counter()
            async with session.post(f"{server_url}/prompt", json={"prompt": prompt, "client_id": client}) as r:
                assert r.status == 200, await r.text()
                prompt_id = (await r.json())["prompt_id"]
            times, cached, current, since = {}, [], None, None
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                data = event.get("data") or {}
                if data.get("prompt_id", prompt_id) != prompt_id:
                    continue
                now = time.perf_counter()
                if event["type"] == "execution_cached":
                    cached = data["nodes"]
                if event["type"] == "executing":
                    if current is not None:
                        times[current] = now - since
                    current, since = data.get("node"), now
                    if current is None:
                        return now - start, times, cached
                if event["type"] in ("execution_error", "execution_interrupted"):
                    raise RuntimeError(json.dumps(data)[:3000])
        raise RuntimeError("the websocket closed before the job ended")

    return asyncio.run(follow())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--working-size", type=int, default=128)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import requests

    from devkit.comfyui import start_comfyui, stop_comfyui
    from devkit.gdino_models import build_tiny_gdino
    from devkit.sam_models import build_tiny_sam
    from devkit.sd_models import build_sd15_checkpoints

    files = build_sd15_checkpoints(CACHE / "test-models")
    base = Path(tempfile.mkdtemp(prefix="cielr-bench-requeue-"))
    models = base / "models"
    for sub in ("grounding-dino", "sams", "checkpoints", "bert-base-uncased"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    weights, bert = build_tiny_gdino(base / "gdino")
    shutil.copytree(bert, models / "bert-base-uncased", dirs_exist_ok=True)
    for part in (Path(weights), Path(weights).with_suffix(".json")):  # the tiny size's config beside it
        shutil.copy(part, models / "grounding-dino" / part.name)
    build_tiny_sam(models / "sams" / "tiny_sam.pth")
    (models / "checkpoints" / files.checkpoint.name).symlink_to(files.checkpoint)
    (base / "input").mkdir()
    shutil.copy(DATA / "0" / "0.png", base / "input" / "cielr_photo.png")
    llm_url, llm = start_scripted_llm()
    server = None
    try:
        server = start_comfyui(base, timeout=900)  # a busy machine starts it slowly
        requests.post(f"{server.url}/settings/Comfy.TutorialCompleted", json=True, timeout=30)
        prompt = api_prompt(server.url, {
            "LoadImage": {"image": "cielr_photo.png"},
            "CIELRGroundingDINOLoader": {"model_name": Path(weights).name},
            "CIELRSAMLoader": {"model_name": "tiny_sam.pth"},
            "CheckpointLoaderSimple": {"ckpt_name": files.checkpoint.name},
            "CIELRLLMRemote": {"base_url": llm_url, "model": "scripted"},
            "CIELRPerceive": {"box_threshold": 0.0, "text_threshold": 0.0},
            "CIELRRefineScene": {"max_rounds": 1, "box_threshold": 0.0, "text_threshold": 0.0},
            "CIELRInpaintActions": {"steps": args.steps, "working_size": args.working_size, "seed": 1},
        })
        inpaint = next(k for k, v in prompt.items() if v["class_type"] == "CIELRInpaintActions")
        llm_node = next(k for k, v in prompt.items() if v["class_type"] == "CIELRLLMRemote")

        def reseeded(seed: int, llm_seed: int | None = None) -> dict:
            out = copy.deepcopy(prompt)
            out[inpaint]["inputs"]["seed"] = seed
            if llm_seed is not None:
                out[llm_node]["inputs"]["seed"] = llm_seed
            return out

        first_s, first_times, _ = run_timed(server.url, reseeded(1))
        second_s, second_times, cached = run_timed(server.url, reseeded(2))
        full_s, full_times, _ = run_timed(server.url, reseeded(3, llm_seed=1))
    finally:
        if server is not None:
            stop_comfyui(server)
        llm.shutdown()
        shutil.rmtree(base, ignore_errors=True)

    def names(times: dict[str, float]) -> str:
        return ", ".join(f"{prompt[k]['class_type']} {s:.2f}" for k, s in sorted(times.items(), key=lambda t: -t[1]))

    alone = first_times[inpaint]
    print(f"\nfirst Queue: {first_s:.1f} s for {len(first_times)} nodes; Inpaint Actions alone {alone:.2f} s "
          f"({args.steps} steps at {args.working_size} px, candidates and retries as shipped)")
    print(f"second Queue, only Inpaint Actions' seed changed: {second_s:.2f} s, {len(second_times)} nodes ran "
          f"({names(second_times)}); {len(cached)} from the cache")
    print(f"  ratio to Inpaint Actions alone: {second_s / alone:.3f} (target <= 1.1)")
    print(f"reference, the LLM seed re-rolled too (every Queue before): {full_s:.1f} s, {len(full_times)} nodes ran; "
          f"ratio {full_s / alone:.2f}")


if __name__ == "__main__":
    main()
