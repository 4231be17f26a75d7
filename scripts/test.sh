#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds the environment once (torch, the pack's
# requirements, test tools, the real ComfyUI), then runs pytest. Extra arguments go to pytest.
#
# Tests run in CIELR_TEST_WORKERS pytest-xdist workers (default 2, one per core of the reference
# machine; 0 runs them in this process). Tests that share a server or a module-scoped model stay in
# one worker (tests/conftest.py groups them for --dist loadgroup). A passing test's temporary folder
# is deleted as it finishes, and the whole base folder at the end of a passing run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# The workers, the ComfyUI servers and the LLM servers they start compute at the same time on few cores;
# torch's OpenMP threads then spin-wait on cores another process needs, and split work that another
# process would run beside them. Waiting passively, on one thread a process, made two and three
# concurrent torch processes 1.3x faster than two passive threads each (one alone is slower, which the
# suite rarely has; python benchmarks/omp_wait.py, docs/benchmarks.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Every test process (workers, ComfyUI servers, Ray workers, CLI runs) imports torch, transformers and
# ComfyUI. The venv is installed without byte-compiling, and a machine that sets PYTHONDONTWRITEBYTECODE
# would then compile those thousands of modules again in each process: keep the bytecode Python writes
# in one folder of the cache instead (outside the sources; docs/benchmarks.md has the figures).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$CIELR_CACHE/pycache}"
exec python -m pytest -n "${CIELR_TEST_WORKERS:-2}" --dist loadgroup -o tmp_path_retention_policy=failed "$@"
