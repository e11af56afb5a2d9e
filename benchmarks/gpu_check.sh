#!/usr/bin/env bash
# GPU check (issue 14): the GPU tests and bench_gpu.py, in under 5 minutes on one NVIDIA GPU.
#
#   benchmarks/gpu_check.sh          # on a machine with an NVIDIA GPU and a CUDA build of torch
#   benchmarks/gpu_check.sh --cpu    # anywhere: the same steps on the CPU, to check the script
#
# PYTHON selects the interpreter (default: .venv/bin/python if present, else python3). Each step
# has its own time limit so that the whole stays under 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

cpu=0
if [[ "${1:-}" == "--cpu" ]]; then
  cpu=1
elif [[ $# -gt 0 ]]; then
  echo "usage: benchmarks/gpu_check.sh [--cpu]" >&2
  exit 64
fi
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"

if [[ $cpu -eq 0 ]]; then
  if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA GPU (torch missing, a CPU-only build, or no driver)." >&2
    echo "gpu_check: run it on a machine with an NVIDIA GPU and a CUDA build of torch," >&2
    echo "gpu_check: or pass --cpu to run the same steps on the CPU." >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== GPU tests (skip themselves without a GPU) and the CPU precision tests"
timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider -rs \
  tests/adapters/test_gpu.py tests/adapters/test_torch_dtype.py

echo "== bench_gpu.py"
if [[ $cpu -eq 1 ]]; then
  timeout 120 "$PYTHON" benchmarks/bench_gpu.py --cpu --repeats 2
else
  timeout 120 "$PYTHON" benchmarks/bench_gpu.py
fi
