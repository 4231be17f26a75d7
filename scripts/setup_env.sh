#!/usr/bin/env bash
# Builds (once) the environment the tests run in: what scripts/setup_comfyui.sh installs (torch,
# ComfyUI, the core requirements), then every optional group, the test tools, Debian's Chromium for
# the browser tests, the llama.cpp server and its small real model (scripts/setup_llm.sh), and
# transformers 4.57 beside the venv's 5.x. Sourcing it exports CIELR_VENV, CIELR_COMFYUI,
# CIELR_TRANSFORMERS4 and CIELR_SMOLLM2 and puts the venv first on PATH. Re-running is cheap: a
# stamp (scripts/env_stamp.sh test) skips the install when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_comfyui.sh"
CACHE="$CIELR_CACHE"

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  else
    echo "[setup] warning: chromium is missing and cannot be installed here (needs root and apt-get); the browser tests will fail" >&2
  fi
fi

STAMP="$(bash "$ROOT/scripts/env_stamp.sh" test)"
if [ "$(cat "$CIELR_VENV/.cielr-stamp" 2>/dev/null)" != "$STAMP" ]; then
  echo "[setup] adding the optional groups and the test tools to $CIELR_VENV"
  pip_ -r "$ROOT/requirements-local-llm.txt" -r "$ROOT/requirements-diffusers.txt" \
       -r "$ROOT/requirements-test.txt"

  # The llama.cpp server the tests talk to, and the small real model.
  source "$ROOT/scripts/setup_llm.sh"

  # transformers 4.57 beside the venv's 5.x: the detector must work on both (a test runs it
  # in a subprocess with this folder first on PYTHONPATH).
  rm -rf "$CACHE/transformers4"
  pip_ --no-deps --target "$CACHE/transformers4" transformers==4.57.6 tokenizers==0.22.1 huggingface-hub==0.36.0
  echo "$STAMP" > "$CIELR_VENV/.cielr-stamp"
fi
export CIELR_TRANSFORMERS4="$CACHE/transformers4"
export CIELR_SMOLLM2="$CACHE/llm/SmolLM2-135M-Instruct.Q4_1.gguf"
