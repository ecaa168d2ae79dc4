#!/usr/bin/env bash
# Re-measure phantom-bench on this machine (CPU, gloo, 1 thread per rank), back to back:
# p = 2 at (n, k, B) = (512, 16, 64), (1024, 32, 128), (2048, 64, 256), three runs each, and
# p = 4 (time-shares the cores where cores < 4: oversubscribed, marked by validate_local.py)
# at (512, 16, 64) and (1024, 32, 128), two runs each. Run it alone (nothing else on the
# machine). Then every GEMM shape of those steps is timed on one thread (phantom-emulate
# --gemm-table: gemm_table_n<N>.yaml, a profile's measured GEMM table).
# Usage: OUT=DIR bash benchmarks/cpu/bench_local.sh   (a relative DIR is relative to the current
#   directory; runs from the source tree with ${PYTHON:-python3}, e.g. PYTHON=.venv/bin/python)
#   then: python benchmarks/projection/validate_local.py --results DIR --markdown
set -euo pipefail
OUT=$(realpath -m "${OUT:?set OUT to the results folder}")
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
run() {  # p n k B repeat
  local p=$1 n=$2 k=$3 b=$4 r=$5 name="p$1_n$2_r$5"
  OMP_NUM_THREADS=1 $PY -m torch.distributed.run --standalone --nproc-per-node "$p" \
    -m phantom_parallel.bench \
    --width "$n" --layers 4 --ghosts "$k" --batch "$b" --steps 30 --warmup 5 --threads 1 \
    --json "$OUT/$name.json" > "$OUT/$name.txt" 2>&1
  echo "$name done $(date -u +%T)"
}
nproc > "$OUT/cores.txt"
for r in 1 2 3; do
  run 2 2048 64 256 "$r"; run 2 1024 32 128 "$r"; run 2 512 16 64 "$r"
done
for r in 1 2; do
  run 4 1024 32 128 "$r"; run 4 512 16 64 "$r"
done
gemms() {  # n k B
  OMP_NUM_THREADS=1 $PY -m phantom_parallel.emulate --strategy tp pp --ranks 2 4 \
    --width "$1" --layers 4 --ghosts "$2" --batch "$3" --steps 2 --warmup 1 --threads 1 \
    --power-source none --gemm-table "$OUT/gemm_table_n$1.yaml" > /dev/null
  echo "gemm_table_n$1 done $(date -u +%T)"
}
gemms 2048 64 256; gemms 1024 32 128; gemms 512 16 64
