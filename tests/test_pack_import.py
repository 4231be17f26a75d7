"""Importing the pack is cheap and never raises; missing optional packages are reported when used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

HEAVY = ("groundingdino", "segment_anything", "transformers", "diffusers")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO.parent, capture_output=True,
                          text=True, timeout=300)


def test_pack_import_is_cheap_and_registers_nodes():
    done = run_python(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("cielr_pack", {str(REPO / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO)!r}])
        pack = importlib.util.module_from_spec(spec); sys.modules["cielr_pack"] = pack
        spec.loader.exec_module(pack)
        print(sorted(pack.NODE_CLASS_MAPPINGS))
        print([m for m in {HEAVY!r} if m in sys.modules])
    """)
    assert done.returncode == 0, done.stderr
    names, heavy = done.stdout.strip().splitlines()[-2:]
    for node in ("CIELRGroundingDINOLoader", "CIELRSAMLoader", "CIELRPerceive", "CIELRBuildScene",
                 "CIELRScenePreview"):
        assert node in names
    assert heavy == "[]", f"importing the pack loaded {heavy}"


def test_pack_import_survives_a_broken_library():
    # cielr_core shadowed by a package that raises on import: the pack logs and registers nothing
    done = run_python(f"""
        import importlib.util, sys, types
        broken = types.ModuleType("cielr_core"); broken.__path__ = []
        def fail(name): raise RuntimeError("simulated broken install")
        broken.__getattr__ = fail
        sys.modules["cielr_core"] = broken
        sys.modules["cielr_core.errors"] = None  # import of a None entry raises ImportError
        spec = importlib.util.spec_from_file_location("cielr_pack", {str(REPO / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO)!r}])
        pack = importlib.util.module_from_spec(spec); sys.modules["cielr_pack"] = pack
        spec.loader.exec_module(pack)
        print("nodes:", len(pack.NODE_CLASS_MAPPINGS))
    """)
    assert done.returncode == 0, done.stderr
    assert "nodes: 0" in done.stdout
    assert "CIELR nodes could not be loaded" in done.stderr


def test_missing_optional_package_is_reported_when_used(tmp_path):
    done = run_python(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        for name in ("groundingdino", "segment_anything"):
            sys.modules[name] = None  # as if not installed
        from cielr_core.errors import CheckpointError, MissingDependencyError
        from cielr_core.perception import load_grounding_dino, load_sam
        for load, args in ((load_grounding_dino, ("x.pth", "bert")), (load_sam, ("x.pth",))):
            try:
                load(*args)
            except MissingDependencyError as e:
                print("OK", e)
            except CheckpointError as e:
                print("CHECKED", e)
    """)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(("OK", "CHECKED"))]
    assert len(lines) == 2, done.stdout + done.stderr
    # GroundingDINO runs on transformers: without groundingdino-py the file itself is what gets checked
    assert lines[0].startswith("CHECKED") and "x.pth" in lines[0] and "does not exist" in lines[0]
    assert lines[1].startswith("OK") and "segment-anything" in lines[1] and "pip install" in lines[1]
