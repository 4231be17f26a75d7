"""The local llama.cpp backend (llama-cpp-python) with SmolLM2-135M-Instruct Q4_1: every answer type of
the reasoning stage schema-valid, seeds repeatable, the KV cache of a shared prefix reused, and files
that are not GGUF chat models refused with a clear error (never a crash in native code)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import Field

from cielr_core.llm import LLM, Answer, LLMError, LocalLLM, Message, llamacpp
from cielr_core.llm.local import GGUF_COST
from cielr_core.reasoning import LabelList, plan_answer_type, verdict_type
from cielr_core.reasoning.prompts import decompose_messages, labels_messages, refine_messages, scene_text
from tests.test_llm_local import PROMPT, VERDICT_PROMPT, Labels, Verdict
from tests.test_reasoning_logic import INSTRUCTION, make_scene

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf) -> LocalLLM:
    llm = LocalLLM(smollm2_gguf, temperature=0, seed=0, max_new_tokens=256)
    assert llm.backend == "llama.cpp", "llama-cpp-python is installed in the test environment"
    return llm.load()


def test_every_answer_type_is_schema_valid(smollm2):
    assert isinstance(smollm2, LLM)
    view = scene_text(make_scene())
    asks = [(labels_messages(INSTRUCTION, 6), LabelList),
            (refine_messages(INSTRUCTION, view, ["speaker"]), verdict_type(view.ids)),
            (decompose_messages(INSTRUCTION, view), plan_answer_type(view.ids)),
            (VERDICT_PROMPT, Verdict)]  # bool, float, optional int, nested objects
    for messages, schema in asks:
        assert isinstance(smollm2.complete(messages, schema), schema)
    assert smollm2.usage.repairs == 0, "constrained decoding: every first answer parses"
    assert smollm2.usage.calls == 4


def test_the_shared_prefix_is_evaluated_once(smollm2):
    """refine then decompose on one scene: the second prompt is read only from where it differs."""
    view = scene_text(make_scene())
    llm = LocalLLM(smollm2.path, max_new_tokens=256)
    llm.complete(refine_messages(INSTRUCTION, view), verdict_type(view.ids))
    first = llm.usage.prompt_evaluated
    llm.complete(decompose_messages(INSTRUCTION, view), plan_answer_type(view.ids))
    second = llm.usage.prompt_evaluated - first
    sent = llm.usage.prompt_tokens
    scene_tokens = len(llm.llama.llama.tokenize(view.text.encode(), add_bos=False))
    assert second < (sent - first) - scene_tokens, "the rules, the instruction and the scene were reused"


class Note(Answer):
    note: str = Field(min_length=10, max_length=40)


def test_same_seed_same_answer(smollm2_gguf, smollm2):
    def ask(seed: int) -> Note:
        return LocalLLM(smollm2_gguf, temperature=1.0, seed=seed, max_new_tokens=64).complete(PROMPT, Note)

    first, again = ask(7), ask(7)
    assert first == again
    assert any(ask(seed) != first for seed in (8, 9, 10)), "other seeds sample differently"


def test_freed_model_loads_again_on_the_next_call(smollm2):
    """What ComfyUI's memory management does to it: free now, answer later as before."""
    before = smollm2.complete(PROMPT, Labels)
    assert smollm2.llama.release() and not smollm2.llama.is_loaded
    assert smollm2.complete(PROMPT, Labels) == before
    assert smollm2.llama.is_loaded


def _links(source: Path, folder: Path, names) -> list[Path]:
    """Three names of one file, each its own path (a symlink would resolve to the one file)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in names]
    for path in paths:
        try:
            os.link(source, path)
        except OSError:  # another file system
            shutil.copyfile(source, path)
    return paths


def test_used_alone_the_library_keeps_the_last_two_models_open(smollm2_gguf, tmp_path):
    """Without a caller's cache the library bounds its own: a third model closes the first."""
    from cielr_core.llm.local import CACHE_SIZE, clear_cache

    clear_cache()
    llms = [LocalLLM(path, max_new_tokens=32).load()
            for path in _links(smollm2_gguf, tmp_path, ("a.gguf", "b.gguf", "c.gguf"))]
    models = [llm.llama for llm in llms[1:]]
    assert CACHE_SIZE == 2 and [m.is_loaded for m in models] == [True, True]
    assert LocalLLM(llms[0].path, max_new_tokens=32).llama.is_loaded is False, "the first was closed"
    clear_cache()
    assert not any(m.is_loaded for m in models)


def test_without_llama_cpp_a_gguf_runs_on_transformers_and_says_so(smollm2_gguf, monkeypatch, caplog):
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    with caplog.at_level(logging.WARNING):
        llm = LocalLLM(smollm2_gguf)
    assert llm.backend == "transformers"
    assert GGUF_COST in caplog.text and "pip install llama-cpp-python" in caplog.text
    with pytest.raises(LLMError, match="pip install llama-cpp-python"):
        LocalLLM(smollm2_gguf, backend="llama.cpp")


def test_node_tooltip_says_what_transformers_costs_without_llama_cpp(monkeypatch):
    from devkit.comfyui import import_comfyui

    import_comfyui()
    from nodes.llm import _model_tip

    assert "llama.cpp" in _model_tip() and "not installed" not in _model_tip()
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    tip = _model_tip()
    assert "not installed" in tip and GGUF_COST in tip and "pip install llama-cpp-python" in tip


def _ask(path) -> None:
    LocalLLM(path, max_new_tokens=32).complete([Message(role="user", content="hi")], LabelList)


def test_a_file_that_is_not_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>404 Not Found</html>" * 40)
    with pytest.raises(LLMError, match="not a GGUF file"):
        _ask(path)


def test_a_gguf_without_chat_template_is_not_a_chat_model(smollm2_gguf, tmp_path):
    path = tmp_path / "base.gguf"
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--remove-metadata",
                    "tokenizer.chat_template", "--force", str(smollm2_gguf), str(path)], check=True,
                   capture_output=True)
    with pytest.raises(LLMError, match="no chat template, so it is not a chat"):
        _ask(path)


def _corrupt(head: bytes, name: str) -> bytes:
    data = bytearray(head)
    key_len = struct.unpack("<Q", head[24:32])[0]
    if name == "version":
        data[4:8] = struct.pack("<I", 7)
    elif name == "tensor count":
        data[8:16] = struct.pack("<Q", 1 << 62)
    elif name == "metadata count":
        data[16:24] = struct.pack("<Q", 1 << 15)
    elif name == "key length":
        data[24:32] = struct.pack("<Q", 1 << 60)
    elif name == "value type":
        data[32 + key_len:36 + key_len] = struct.pack("<I", 999)
    elif name == "cut header":
        return bytes(data[:12])
    return bytes(data)  # "cut off": the first MiB of a real file


@pytest.mark.parametrize("damage", ["version", "tensor count", "metadata count", "key length", "value type",
                                    "cut header", "cut off"])
def test_a_malformed_gguf_is_a_clear_error_not_a_crash(smollm2_gguf, tmp_path, damage):
    with open(smollm2_gguf, "rb") as f:
        head = f.read(1 << 20)
    path = tmp_path / "damaged.gguf"
    path.write_bytes(_corrupt(head, damage))
    with pytest.raises(LLMError, match="GGUF|llama.cpp cannot load") as e:
        _ask(path)
    assert "damaged" in str(e.value) or "cut off" in str(e.value) or "version" in str(e.value)


def test_a_folder_is_never_given_to_llama_cpp(tiny_chat_model, tmp_path):
    folder = tmp_path / "folder.gguf"  # a folder with a .gguf name is still a folder
    shutil.copytree(tiny_chat_model, folder)
    assert LocalLLM(folder).backend == "transformers"


# ComfyUI on the CPU, imported in a process of its own, with the pack's model folders under ``models``
_COMFYUI_PREAMBLE = textwrap.dedent(r'''
    import json, sys
    repo, comfyui, models = sys.argv[1:4]
    sys.path[:0] = [repo]
    sys.path.append(comfyui)  # after the repo: the pack's "nodes" package wins over ComfyUI's nodes.py
    import comfy.options
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    import comfy.model_management as mm
    import folder_paths
    folder_paths.models_dir = models
    from nodes.model_folders import register_model_folders
    register_model_folders()
''')


def _run_in_comfyui(script: str, models: Path) -> dict:
    """Run ``script`` after the preamble; it prints its findings as one 'RESULT {json}' line."""
    from devkit import COMFYUI

    if not (COMFYUI / "folder_paths.py").is_file():
        pytest.fail(f"ComfyUI is not installed at {COMFYUI}: run the tests through scripts/test.sh")
    proc = subprocess.run([sys.executable, "-c", _COMFYUI_PREAMBLE + script, str(REPO), str(COMFYUI), str(models)],
                          cwd=models.parent, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


_NODE_SCRIPT = textwrap.dedent(r'''
    from cielr_core.reasoning import LabelList
    from cielr_core.reasoning.prompts import labels_messages
    from nodes.llm import CIELRLLMLocal
    (llm,) = CIELRLLMLocal.execute("smollm2.gguf", "auto", 0.0, 0, 128)
    model = llm.managed.core
    ask = lambda: llm.complete(labels_messages("remove the cup", 3), LabelList).labels
    out = {"backend": llm.target.backend, "first": ask()}
    out["registered"] = any(m.model is llm.managed.patcher for m in mm.current_loaded_models)
    out["loaded"] = model.is_loaded and llm.target.llama is model
    mm.free_memory(1e30, mm.get_torch_device())  # the diffusion model asks for every byte
    out["freed"] = not model.is_loaded
    out["again"] = ask()
    out["reloaded"] = model.is_loaded
    mm.unload_all_models()
    out["unloaded"] = not model.is_loaded
    print("RESULT " + json.dumps(out))
''')


def test_comfyui_frees_the_llama_cpp_model_and_the_next_call_loads_it_again(smollm2_gguf, tmp_path):
    """The node under ComfyUI's real memory management (CPU): registered as a loaded model, freed when
    ComfyUI needs the room or unloads everything, and answering as before after it comes back."""
    (tmp_path / "models" / "LLM").mkdir(parents=True)
    (tmp_path / "models" / "LLM" / "smollm2.gguf").symlink_to(smollm2_gguf)
    out = _run_in_comfyui(_NODE_SCRIPT, tmp_path / "models")
    assert out["backend"] == "llama.cpp"
    assert out["registered"] and out["loaded"], "ComfyUI knows the model and it is in memory"
    assert out["freed"] and out["reloaded"] and out["unloaded"]
    assert out["again"] == out["first"]


_THREE_MODELS_SCRIPT = textwrap.dedent(r'''
    import cielr_core.llm.local as local
    from cielr_core.reasoning import LabelList
    from cielr_core.reasoning.prompts import labels_messages
    from nodes.llm import CIELRLLMLocal
    reads = []
    read = local._read
    local._read = lambda path, dtype: reads.append(path) or read(path, dtype)  # every copy of weights read
    node = CIELRLLMLocal
    ask = lambda llm: llm.complete(labels_messages("remove the cup", 3), LabelList).labels
    llms = [node.execute(name, "cpu", 0.0, 0, 400)[0] for name in ("first", "second", "third")]
    answers = [ask(llm) for llm in llms]
    again = node.execute("first", "cpu", 0.7, 1, 400)[0]  # other settings, the same file
    ask(again)
    out = {"reads": len(reads), "files": len(set(reads)), "first_again": ask(llms[0]) == answers[0],
           "shared": again.target.model is llms[0].managed.core.model, "library_cache": len(local._SHARED),
           "registered": sum(any(m.model is llm.managed.patcher for m in mm.current_loaded_models) for llm in llms)}
    print("RESULT " + json.dumps(out))
''')


def test_three_local_models_are_each_loaded_once_under_comfyui(tiny_chat_model, tmp_path):
    """The node's cache is the only cache of local weights: three models, then the first again, read
    three copies, all managed by ComfyUI, none kept by the library besides."""
    for name in ("first", "second", "third"):
        shutil.copytree(tiny_chat_model, tmp_path / "models" / "LLM" / name)
    out = _run_in_comfyui(_THREE_MODELS_SCRIPT, tmp_path / "models")
    assert out["reads"] == 3 and out["files"] == 3, out
    assert out["shared"] and out["first_again"], "the first model answers from the weights read at first"
    assert out["library_cache"] == 0, "the library keeps no second copy"
    assert out["registered"] == 3, "ComfyUI manages every copy"


_THREE_GGUF_SCRIPT = textwrap.dedent(r'''
    import cielr_core.llm.local as local
    from cielr_core.llm import llamacpp
    from cielr_core.reasoning import LabelList
    from cielr_core.reasoning.prompts import labels_messages
    from nodes.llm import CIELRLLMLocal
    opens = []
    open_ = llamacpp._open
    llamacpp._open = lambda *key: opens.append(key[0]) or open_(*key)  # every copy of a model opened
    node = CIELRLLMLocal
    ask = lambda llm: llm.complete(labels_messages("remove the cup", 3), LabelList).labels
    llms = [node.execute(name, "cpu", 0.0, 0, 128)[0] for name in ("first.gguf", "second.gguf", "third.gguf")]
    answers = [ask(llm) for llm in llms]
    again = node.execute("first.gguf", "cpu", 0.7, 1, 128)[0]  # other settings, the same file
    ask(again)
    usage = llms[0].target.usage
    before = (usage.prompt_tokens, usage.prompt_evaluated)
    out = {"first_again": ask(llms[0]) == answers[0],
           "reused": usage.prompt_evaluated - before[1] < usage.prompt_tokens - before[0]}
    out |= {"opens": len(opens), "files": len(set(opens)),
           "shared": again.target.llama is llms[0].managed.core, "open": sum(m.managed.core.is_loaded for m in llms),
           "library_cache": len(local._SHARED_LLAMA),
           "registered": sum(any(m.model is llm.managed.patcher for m in mm.current_loaded_models) for llm in llms)}
    print("RESULT " + json.dumps(out))
''')


def test_three_gguf_models_are_each_opened_once_under_comfyui(smollm2_gguf, tmp_path):
    """The node's cache is the only cache of llama.cpp models: three models, then the first again, open
    three, all managed by ComfyUI and all still open, none kept (or closed) by the library besides; the
    first, asked again, reads only what its KV cache does not hold."""
    _links(smollm2_gguf, tmp_path / "models" / "LLM", ("first.gguf", "second.gguf", "third.gguf"))
    out = _run_in_comfyui(_THREE_GGUF_SCRIPT, tmp_path / "models")
    assert out["opens"] == 3 and out["files"] == 3, out
    assert out["shared"] and out["first_again"], "the first model answers from the model opened at first"
    assert out["reused"], "ComfyUI registering the model again for a call keeps its KV cache"
    assert out["open"] == 3, "the library closed none of them"
    assert out["library_cache"] == 0, "the library keeps no second copy"
    assert out["registered"] == 3, "ComfyUI manages every copy"
