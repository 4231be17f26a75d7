"""Static guarantees: no exec/eval/pickle/subprocess in the library or the nodes, no secrets in
shipped files, checkpoints only through weights_only loading, and the library's floors (a module
imports only from floors below its own)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from tests.conftest import REPO

SECURITY_RULES = "S102,S307,S301,S603,S607"  # exec, eval, pickle, subprocess (with partial paths)
KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_-]{20,}"),  # OpenAI-style
    re.compile(r"hf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._-]{20,}"),
]


def ruff() -> list[str]:
    return [sys.executable, "-m", "ruff"]


def test_ruff_security_rules_pass_on_library_and_nodes():
    done = subprocess.run([*ruff(), "check", "--no-cache", "--select", SECURITY_RULES, "cielr_core", "nodes",
                           "__init__.py"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_python_file_keeps_the_configured_line_length():
    done = subprocess.run([*ruff(), "check", "--no-cache", "--select", "E501", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_security_rules_do_catch_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def run(answer):\n    return eval(answer)\n")
    done = subprocess.run([*ruff(), "check", "--no-cache", "--select", SECURITY_RULES, str(bad)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "S307" in done.stdout


def test_every_torch_load_uses_weights_only():
    for path in list((REPO / "cielr_core").rglob("*.py")) + list((REPO / "nodes").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path.relative_to(REPO)}:{n}: {line.strip()}"


def shipped_files():
    for pattern in ("example_workflows/*.json", "nodes/*.py", "cielr_core/**/*.py", "README.md", "docs/*.md"):
        yield from REPO.glob(pattern)


def test_no_api_key_in_shipped_files_or_widget_defaults():
    for path in shipped_files():
        text = path.read_text(errors="replace")
        for pattern in KEY_PATTERNS:
            assert not pattern.search(text), f"{path.relative_to(REPO)} holds something shaped like a key"


def test_no_api_key_in_widget_defaults(comfyui):
    info = comfyui.object_info()
    nodes = {name: spec for name, spec in info.items() if name.startswith("CIELR")}
    assert nodes
    for name, spec in nodes.items():
        for section in spec["input"].values():
            for field, entry in section.items():
                options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
                default = str(options.get("default", ""))
                assert not any(p.search(default) for p in KEY_PATTERNS), f"{name}.{field} default looks like a key"
                assert "api_key" not in field or field.endswith("_env"), \
                    f"{name}.{field}: keys come from the environment"


def test_the_key_patterns_match_real_key_shapes():
    assert any(p.search("sk-" + "a1" * 20) for p in KEY_PATTERNS)
    assert any(p.search("Authorization: Bearer " + "x" * 32) for p in KEY_PATTERNS)


def _imports_of(folder: str, package: str) -> list[str]:
    """Lines under ``folder`` that import ``package`` (or a module in it), at any indentation."""
    pattern = re.compile(rf"^\s*(from\s+{package}(\.|\s+import)|import\s+{package}(\.|\s|$))")
    return [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for path in sorted((REPO / folder).rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]


def test_tests_and_benchmarks_do_not_import_each_other():
    """What both need (model builders, servers, data paths) lives in devkit/."""
    crossings = (_imports_of("benchmarks", "tests") + _imports_of("scripts", "tests")
                 + _imports_of("devkit", "tests") + _imports_of("tests", "benchmarks")
                 + _imports_of("scripts", "benchmarks"))
    assert not crossings, "\n".join(crossings)


def test_the_product_never_imports_the_devkit():
    assert not _imports_of("cielr_core", "devkit") + _imports_of("nodes", "devkit")
    assert _imports_of("tests", "devkit")  # the check above does find imports where there are some


# ComfyUI's own top-level modules and packages besides its documented comfy_api
COMFY_INTERNALS = ("comfy", "comfy_extras", "comfy_execution", "comfy_config", "comfy_api_nodes", "folder_paths",
                   "latent_preview", "node_helpers", "server", "execution", "app", "comfyui_version")
INTERNALS_MODULE = REPO / "nodes" / "comfy_internals.py"
_INTERNAL_USE = re.compile(rf"^\s*(from|import)\s+({'|'.join(COMFY_INTERNALS)})(\.|\s|$)"
                           rf"|(import_module|__import__)\(\s*[\"']({'|'.join(COMFY_INTERNALS)})(\.|[\"'])")


def _internal_uses(path) -> list[str]:
    return [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for n, line in enumerate(path.read_text().splitlines(), 1) if _INTERNAL_USE.search(line)]


def test_comfyui_internals_are_used_in_one_module_only():
    """Everything the pack uses of ComfyUI outside comfy_api goes through nodes/comfy_internals.py, so a
    change upstream is met in one place (and the library never imports ComfyUI at all)."""
    paths = [REPO / "__init__.py", *(REPO / "nodes").rglob("*.py"), *(REPO / "cielr_core").rglob("*.py")]
    uses = [use for path in paths if path != INTERNALS_MODULE for use in _internal_uses(path)]
    assert not uses, "ComfyUI internals outside nodes/comfy_internals.py:\n" + "\n".join(uses)
    assert len(_internal_uses(INTERNALS_MODULE)) >= 8  # the check finds imports where there are some


def test_the_internals_check_catches_each_way_of_importing():
    for line in ("import comfy.sample", "from comfy import model_management", "    import folder_paths",
                 "import latent_preview as lp", "from node_helpers import conditioning_set_values",
                 "from comfy_extras.nodes_mask import x", "importlib.import_module('comfy.utils')"):
        assert _INTERNAL_USE.search(line), line
    for line in ("from comfy_api.latest import io", "import comfyui_frontend_package", "from . import comfy_internals"):
        assert not _INTERNAL_USE.search(line), line


# The library's rooms by floor, bottom up. A module imports (at the top or inside a function) only
# from floors below its own, or from its own room. A room is a module or package under cielr_core/
# ("" is the package itself); a dotted name ("cli.edit") puts one module of a package on a floor of
# its own. A new module goes on a floor here.
FLOORS = (
    ("", "errors"),
    ("images", "weights", "labels", "cache", "progress", "settings", "model_folders", "dependencies"),
    ("scene", "llm", "runs"),
    ("plan", "perception", "evaluation"),
    ("verdict", "reasoning", "config"),
    ("editing",),
    ("verify",),
    ("pipeline",),
    ("cli", "cli.common", "edit_report"),
    ("bench", "batch", "cli.edit", "cli.run_options"),
    ("cli.bench", "cli.batch"),
    ("__main__",),
)
FLOOR_OF = {room: n for n, rooms in enumerate(FLOORS) for room in rooms}


def _module_name(path) -> str:
    parts = path.relative_to(REPO / "cielr_core").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(name: str) -> str | None:
    """The longest room in FLOORS that ``name`` (a module under cielr_core, dotted) lies in."""
    while name not in FLOOR_OF:
        if not name:
            return None
        name = name.rpartition(".")[0]
    return name


def _library_imports() -> dict[str, set[str]]:
    """Each module under cielr_core and the cielr_core modules it imports (names without the prefix)."""
    files = sorted((REPO / "cielr_core").rglob("*.py"))
    known = {_module_name(p) for p in files}
    out = {}
    for path in files:
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                    stem = ".".join(base + ([node.module] if node.module else []))
                elif node.module == "cielr_core" or (node.module or "").startswith("cielr_core."):
                    stem = node.module.removeprefix("cielr_core").lstrip(".")
                else:
                    continue
                for alias in node.names:  # "from . import common" imports a module; else the stem
                    sub = f"{stem}.{alias.name}".lstrip(".")
                    targets.add(sub if sub in known else stem)
            elif isinstance(node, ast.Import):
                targets |= {a.name.removeprefix("cielr_core").lstrip(".") for a in node.names
                            if a.name == "cielr_core" or a.name.startswith("cielr_core.")}
        out[name] = targets
    return out


def test_every_library_module_stands_on_a_floor_and_imports_only_from_below():
    imports = _library_imports()
    unplaced = sorted(m for m in imports if _room(m) is None)
    assert not unplaced, f"modules on no floor (add them to FLOORS in tests/test_static.py): {unplaced}"
    upward = []
    for module, targets in imports.items():
        room = _room(module)
        for target in targets:
            other = _room(target)
            if other != room and FLOOR_OF[other] >= FLOOR_OF[room]:
                upward.append(f"{module or 'cielr_core'} (floor {FLOOR_OF[room]}) imports {target} "
                              f"(floor {FLOOR_OF[other]})")
    assert not upward, "\n".join(sorted(upward))


def test_the_floor_check_sees_imports_at_every_depth():
    imports = _library_imports()
    assert "pipeline" in imports["bench.runner"] and FLOOR_OF[_room("bench.runner")] > FLOOR_OF["pipeline"]
    assert "images" in imports["cli.common"]  # a relative import inside a function counts
    assert "cli.common" in imports["cli.edit"]  # "from . import common" is the module, not the package
    assert _room("cli.edit") == "cli.edit" and _room("cli") == "cli" and _room("bench.runner") == "bench"
