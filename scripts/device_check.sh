#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run of a few minutes: the tests marked `cuda`
# (tests/test_cuda.py) and one timed 1024 x 1024 action with random weights
# (benchmarks/gpu_action.py). Prints the card and every figure; record them in docs/benchmarks.md.
#
#   bash scripts/device_check.sh          run the checks (exits 2, saying why, without a CUDA GPU)
#   bash scripts/device_check.sh wheels   on a machine with pip access: download into .whl/ the
#                                         wheels of the packages a GPU machine with only torch lacks
#
# Python: $PYTHON, else the test venv (scripts/setup_env.sh) when it is there, else python3. A GPU
# machine that cannot reach a package index needs only torch and transformers installed: carry .whl/
# (made by `wheels` for its Python, DEVICE_PYTHON, 3.12 by default) and the check installs from it
# into a temporary folder, without touching the machine's own packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WHEELS="$PWD/.whl"
# The pack's runtime packages beyond torch/transformers/numpy/pillow, at the versions the test venv has.
PACKAGES=(diffusers==0.42.1 segment-anything==1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types
          typing-inspection typing-extensions importlib-metadata xgrammar==0.2.9 apache-tvm-ffi)
MODULES=(diffusers segment_anything pydantic xgrammar transformers safetensors PIL requests pytest)

fail() { echo "device_check: $*" >&2; exit 2; }

if [ "${1:-}" = wheels ]; then
  version="${DEVICE_PYTHON:-3.12}"
  platforms=()
  for n in 17 24 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  mkdir -p "$WHEELS"
  python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
      --python-version "$version" --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 \
      -d "$WHEELS" "${PACKAGES[@]}"
  echo "device_check: $(ls "$WHEELS" | wc -l) wheels for Python $version in .whl ($(du -sh "$WHEELS" | cut -f1));" \
       "carry .whl with the check"
  exit 0
fi
[ $# -eq 0 ] || fail "unknown argument '$1' (use no argument, or 'wheels')"

if [ -z "${PYTHON:-}" ]; then
  venv="${CIELR_VENV:-${CIELR_CACHE:-$HOME/.cache/cielr}/venv}"
  if [ -x "$venv/bin/python" ]; then PYTHON="$venv/bin/python"; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null || fail "no Python found ($PYTHON)"
"$PYTHON" -c "import torch" 2>/dev/null || fail "$PYTHON has no torch: install torch with CUDA support first"
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  fail "no CUDA GPU is visible to $PYTHON (torch $("$PYTHON" -c 'import torch; print(torch.__version__)')):" \
       "this check runs only on a machine with a CUDA GPU"
fi

missing() { for m in "${MODULES[@]}"; do "$PYTHON" -c "import $m" 2>/dev/null || echo "$m"; done; }
if [ -n "$(missing)" ] && [ -d "$WHEELS" ]; then
  site="$(mktemp -d)"
  trap 'rm -rf "$site"' EXIT
  echo "device_check: installing $(ls "$WHEELS"/*.whl | wc -l) carried wheels into $site"
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --target "$site" \
      "$WHEELS"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -z "$(missing)" ] || fail "$PYTHON lacks: $(missing | tr '\n' ' ')- run 'bash scripts/device_check.sh wheels'" \
                            "where pip works and carry .whl, or install the pack's requirements"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
out="${OUT:-$(mktemp -d)}"
echo "== card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PYTHON" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}: {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, torch {torch.__version__}, CUDA {torch.version.cuda}')"

echo "== tests that need a GPU"
start=$SECONDS
set +e
timeout 300 "$PYTHON" -m pytest tests/test_cuda.py -m cuda -q -p no:cacheprovider --durations=10 \
    --junitxml="$out/device_tests.xml"
tests=$?
echo "tests: exit $tests in $((SECONDS - start)) s"

echo "== one 1024 x 1024 action, random SD1.5 inpainting weights"
start=$SECONDS
timeout 240 "$PYTHON" benchmarks/gpu_action.py --device cuda --size 1024 --steps 20 --repeats 3 \
    --json "$out/gpu_action.json"
action=$?
echo "action: exit $action in $((SECONDS - start)) s"
set -e

[ "$tests" -eq 0 ] && [ "$action" -eq 0 ] || { echo "device_check: FAILED (tests exit $tests, action exit $action)"; exit 1; }
echo "device_check: passed; figures in $out/gpu_action.json"
