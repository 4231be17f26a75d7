"""Local GGUF, side by side: this pack's LocalLLM against raw llama-cpp-python (and, on request, the
transformers path) on the same file and the same schema-constrained decomposition request.

Each side runs in its own process (``reasoning.py --local-worker NAME``), so that load time and
peak RSS are its own: load + first answer (imports included), seconds per answer (median of the
same request asked again), peak RSS of the process (ru_maxrss). The request is built once here
from a hand-made 8-object scene and the first ciebench-dev instruction, and handed to the workers
as JSON: raw llama-cpp-python gets the same messages and the answer's JSON schema as its
``response_format``, as its documentation shows.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 256
SIDES = ("raw llama-cpp-python", "this pack (llama.cpp)", "this pack (transformers)")
_REQUEST = "CIELR_BENCH_REQUEST"


def build_request() -> dict:
    import numpy as np

    from cielr_core.llm import strict_schema
    from cielr_core.reasoning import plan_answer_type
    from cielr_core.reasoning.prompts import decompose_messages, scene_text
    from cielr_core.scene import Scene, build_scene, make_object

    w, h = 640, 480
    spec = [("tv", (200, 80, 440, 240)), ("speaker", (460, 120, 520, 260)), ("speaker", (130, 120, 190, 260)),
            ("sofa", (60, 300, 600, 470)), ("lamp", (560, 40, 620, 300)), ("table", (250, 330, 420, 420)),
            ("cup", (300, 300, 330, 335)), ("plant", (20, 150, 80, 320))]
    objects = []
    for i, (label, box) in enumerate(spec, start=1):
        mask = np.zeros((h, w), bool)
        mask[box[1]:box[3], box[0]:box[2]] = True
        objects.append(make_object(i, label, 0.9 - 0.05 * i, box, mask))
    scene = build_scene(Scene(w, h, objects))
    instruction = json.loads((DATA / "data.json").read_text())["0"]["instruction"]
    view = scene_text(scene)
    messages = [m.model_dump() for m in decompose_messages(instruction, view)]
    return {"messages": messages, "ids": list(view.ids), "schema": strict_schema(plan_answer_type(view.ids))}


def worker(side: str, model: Path, answers: int) -> None:
    """One side of the comparison; prints one JSON line."""
    request = json.loads(Path(os.environ[_REQUEST]).read_text())
    start = time.perf_counter()
    if side == SIDES[0]:
        import llama_cpp

        from cielr_core.llm.llamacpp import context_size, default_threads

        llama = llama_cpp.Llama(model_path=str(model), n_ctx=context_size(MAX_TOKENS), n_threads=default_threads(),
                                n_threads_batch=default_threads(), verbose=False)

        def ask() -> str:
            reply = llama.create_chat_completion(
                messages=request["messages"], temperature=0.0, max_tokens=MAX_TOKENS, seed=0,
                response_format={"type": "json_object", "schema": request["schema"]})
            return reply["choices"][0]["message"]["content"]
    else:
        from cielr_core.llm import LocalLLM, Message
        from cielr_core.reasoning import plan_answer_type

        backend = "llama.cpp" if side == SIDES[1] else "transformers"
        llm = LocalLLM(model, temperature=0.0, seed=0, max_new_tokens=MAX_TOKENS, backend=backend)
        schema = plan_answer_type(request["ids"])
        messages = [Message(**m) for m in request["messages"]]

        def ask() -> str:
            return llm.complete(messages, schema).model_dump_json()
    first = ask()
    load_first = time.perf_counter() - start
    times = []
    for _ in range(answers):
        t = time.perf_counter()
        ask()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"side": side, "load_first": load_first, "per_answer": statistics.median(times),
                      "peak_rss": peak, "answer": first}))


def compare(model: Path, answers: int, with_transformers: bool) -> str:
    sides = SIDES if with_transformers else SIDES[:2]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "request.json"
        path.write_text(json.dumps(build_request()))
        env = {**os.environ, _REQUEST: str(path)}
        for side in sides:
            out = subprocess.run([sys.executable, str(HERE / "reasoning.py"), "--local-worker", side,
                                  "--answers", str(answers)], env=env, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f"{side} failed:\n{out.stderr[-3000:]}")
            results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    raw = results[SIDES[0]]
    lines = [(f"Local GGUF: {model.name}, one decomposition request ({answers} answers timed after the first), "
              f"each side in its own process, {os.cpu_count()} CPUs"), "",
             "| | load + first answer | per answer | peak RSS | first answer |", "|---|---|---|---|---|"]
    for side in sides:
        r = results[side]
        lines.append(f"| {side} | {r['load_first']:.2f} s ({r['load_first'] / raw['load_first']:.2f}x) | "
                     f"{r['per_answer']:.2f} s ({r['per_answer'] / raw['per_answer']:.2f}x) | "
                     f"{r['peak_rss'] / 2**20:.0f} MB ({r['peak_rss'] / raw['peak_rss']:.2f}x) | "
                     f"`{r['answer'][:80]}` |")
    return "\n".join(lines)
