#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds the environment once (torch, the pack's
# requirements, test tools, the real ComfyUI), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
exec python -m pytest "$@"
