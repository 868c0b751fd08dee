#!/usr/bin/env bash
# One call on a lent GPU machine: install boardgraph (no deps, no network), run every CUDA test,
# then the GPU benchmarks, then (with .bench/ carried: benchmarks/prepare_gpu_carry.py) the
# fine-tuned Steam table. Results go to $OUT (the device tool's output folder) or ./gpu_check_out.
# Usage: bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export BOARDGRAPH_BENCH_GRAPH=${BOARDGRAPH_BENCH_GRAPH:-/tmp/boardgraph_bench.npz}
# ../shared/bench does not travel to a lent machine: carry a copy in an ignored folder (.bench/)
if [ -z "${BOARDGRAPH_SHARED_BENCH:-}" ] && [ -f .bench/make_bench_graph.py ]; then
  export BOARDGRAPH_SHARED_BENCH=$PWD/.bench
fi

$PY -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1 \
  || { echo "install failed"; tail -5 "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/device.txt"

echo "== CUDA tests"
$PY -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests 2>&1 | tee "$OUT/cuda_tests.log" | tail -15

cd benchmarks
echo "== train benchmark (cuda)"
timeout ${TRAIN_TIMEOUT:-90} $PY train.py --device cuda --pins 20000 --steps 30 2>&1 | grep '^{' | tee "$OUT/train_cuda.jsonl"
echo "== build benchmark (cuda)"
timeout ${BUILD_TIMEOUT:-90} $PY build_graph.py --device cuda 2>&1 | grep '^{' | tee "$OUT/build_cuda.jsonl"
echo "== sampling benchmark (cuda)"
timeout ${SAMPLING_TIMEOUT:-120} $PY sampling.py --device cuda --graph "$BOARDGRAPH_BENCH_GRAPH" \
  ${BOARDGRAPH_SHARED_BENCH:+--bench-dir "$BOARDGRAPH_SHARED_BENCH"} 2>&1 | grep '^{' | tee "$OUT/sampling_cuda.jsonl"

# Steam bundle completion with the MiniLM tower fine-tuned (the README's fine-tuned table); needs
# .bench/ filled by `python benchmarks/prepare_gpu_carry.py` and carried to the device.
cd ..
if [ -d .bench/minilm16 ] && [ -d .bench/data/steam-bundles ]; then
  echo "== Steam, MiniLM fine-tuned (cuda)"
  BOARDGRAPH_DATA=$PWD/.bench/data timeout ${STEAM_TIMEOUT:-420} $PY examples/reproduce_results.py steam --finetune \
    --device cuda --text-path .bench/minilm16 --models random popularity ease content coboard neighbor tfidf coboard+tfidf neighbor+tfidf --seeds ${STEAM_SEEDS:-0 1 2 3 4} \
    --threads 4 --out /tmp/steam_finetuned 2>&1 | grep -v "^step \|Loading" | tee "$OUT/steam_finetuned.log" | tail -25
else
  echo "== Steam fine-tuned: skipped (run python benchmarks/prepare_gpu_carry.py and carry .bench)"
fi
