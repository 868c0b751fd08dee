#!/usr/bin/env bash
# One call on a lent GPU machine: install boardgraph (no deps, no network), run every CUDA test,
# then the GPU benchmarks. Results go to $OUT (the device tool's output folder) or ./gpu_check_out.
# Usage: bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export BOARDGRAPH_BENCH_GRAPH=${BOARDGRAPH_BENCH_GRAPH:-/tmp/boardgraph_bench_graph.npz}

$PY -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1 \
  || { echo "install failed"; tail -5 "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/device.txt"

echo "== CUDA tests"
$PY -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$OUT/cuda_tests.log" | tail -15

echo "== build benchmark (cuda)"
timeout 240 $PY benchmarks/build_graph.py --device cuda 2>&1 | tee "$OUT/build_cuda.jsonl"
if [ -f benchmarks/sampling.py ]; then
  echo "== sampling benchmark (cuda)"
  timeout 240 $PY benchmarks/sampling.py --device cuda 2>&1 | tee "$OUT/sampling_cuda.jsonl"
fi
