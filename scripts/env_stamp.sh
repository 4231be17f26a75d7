#!/usr/bin/env bash
# Prints the stamp of an environment tier: a hash of the files that decide what the tier installs.
# A tier is rebuilt when its stamp changes.
#   scripts/env_stamp.sh comfyui   # scripts/start_comfyui.sh: torch, ComfyUI and the core requirements
#   scripts/env_stamp.sh test      # scripts/test.sh: the comfyui tier plus every requirements file (each optional group, the test tools)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-test}" in
  comfyui) files=(requirements.txt scripts/setup_comfyui.sh) ;;
  test) files=(requirements*.txt scripts/setup_comfyui.sh scripts/setup_env.sh scripts/setup_llm.sh) ;;
  *) echo "usage: $0 comfyui|test" >&2; exit 2 ;;
esac
cat "${files[@]}" | sha256sum | cut -c1-16
