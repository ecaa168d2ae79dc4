#!/usr/bin/env bash
# One-command GPU check (issue 9), under 8 minutes on one GPU:
#   1. the trainer on cuda with NVML sampling, then `phantom-energy extract` on its run folder;
#   2. p = 2 on the one GPU over gloo: TP with each collective-timing mode of the ledger
#      (off / events / device-sync: what timing adds to a real step) and PP;
#   3. `phantom-emulate` at n = 16384, L = 4, k = 32, B = 1024, p in {8, 64, 256}: eager (TP and
#      PP side by side in interleaved rounds), CUDA graph replay, and bfloat16 eager; the
#      eager and bf16 runs also time every GEMM shape of their steps (--gemm-table: the
#      measured table for config/hardware/nvidia-h200.yaml's gemm_table);
#   4. one summary table (benchmarks/gpu/summarize.py) at the end.
# Usage: bash benchmarks/gpu/check.sh [OUT_DIR]   (default: benchmarks/results/<date>-gpu;
# a relative OUT_DIR is relative to the current directory)
# Runs from the source tree (PYTHONPATH=src); needs torch with CUDA and nvidia-ml-py.
# CHECK_SCALE=smoke: every part at toy sizes on the CPU, power from the nvidia-smi on PATH, CUDA
# graph replay skipped: tests/test_benchmark_scripts.py runs it so with a stand-in nvidia-smi,
# so that a lent GPU's minutes are not what finds a broken script.
# CHECK_RESUME=1: the emulation runs keep the p an earlier, stopped check wrote to the same
# OUT_DIR (phantom-emulate --resume) and measure the rest (without it, phantom-emulate refuses
# to replace a stopped run's file: use CHECK_RESUME=1 or a new OUT_DIR).
set -uo pipefail  # not -e: a failed part is reported and the others still run
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/benchmarks/results/$(date -u +%Y-%m-%d)-gpu}")
cd "$ROOT"
mkdir -p "$OUT" || exit 1
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
exec > >(tee "$OUT/check.log") 2>&1
say() { echo "== $(date -u +%H:%M:%S) $*"; }
FAILED=()
run() { "$@" || { echo "!! failed ($?): $*"; FAILED+=("$*"); }; }
case ${CHECK_SCALE:-gpu} in
gpu)
    DEVICE=cuda POWER=nvml BATCH=1024 GHOSTS=32
    DATA=(--teacher-width 512 --n-train 32768 --n-val 4096 --shard-rows 8192)
    SERIAL=(--width 4096 --epochs 12) P2=(--width 2048 --epochs 5 --max-steps 150)
    EMU=(--width 16384 --ghosts 32 --batch 1024 --steps 20 --warmup 5) ;;
smoke)
    DEVICE=cpu POWER=nvidia-smi BATCH=64 GHOSTS=4
    DATA=(--teacher-width 64 --n-train 2048 --n-val 512 --shard-rows 1024)
    SERIAL=(--width 64 --epochs 1) P2=(--width 64 --epochs 1 --max-steps 20)
    EMU=(--width 512 --ghosts 1 --batch 8 --steps 5 --warmup 1 --threads 1) ;;
*) echo "CHECK_SCALE=${CHECK_SCALE}: use gpu or smoke"; exit 2 ;;
esac
RESUME=()
[[ ${CHECK_RESUME:-0} == 1 ]] && RESUME=(--resume)

say host
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv
run $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
say "idle power (W), 4 s before any work"
timeout 4 nvidia-smi --query-gpu=power.draw --format=csv,noheader -lms 500

say "1. serial trainer on $DEVICE, $POWER sampling, energy extraction"
run $PY -m phantom_parallel.data generate --out "$WORK/data" --d-in 64 --d-out 8 \
    --teacher-layers 4 "${DATA[@]}" --quiet
train=(-m phantom_parallel.train --data "$WORK/data" --layers 4 --batch-size "$BATCH"
       --device "$DEVICE" --no-progress)
run $PY "${train[@]}" --run-dir "$WORK/serial" --strategy serial "${SERIAL[@]}" \
    --power-source "$POWER"
run $PY -m phantom_parallel.energy.cli extract --run-dir "$WORK/serial"
run $PY - "$WORK/serial" "$OUT/serial.json" <<'PY'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
out = {name: json.loads((run / f"{name}.json").read_text()) for name in ("summary", "energy")}
pathlib.Path(sys.argv[2]).write_text(json.dumps(out, indent=1) + "\n")
PY

say "2. p = 2 on one device ($DEVICE) over gloo (ledger timing modes; PP)"
torchrun=(-m torch.distributed.run --standalone --nproc-per-node 2)
for timing in off events device-sync; do
    run $PY "${torchrun[@]}" "${train[@]}" --run-dir "$WORK/tp-$timing" --strategy tp "${P2[@]}" \
        --backend gloo --power-source none --comm-timing "$timing"
done
run $PY "${torchrun[@]}" "${train[@]}" --run-dir "$WORK/pp-events" --strategy pp "${P2[@]}" \
    --ghosts "$GHOSTS" --backend gloo --power-source none
run $PY - "$WORK" "$OUT/ledger.json" <<'PY'
import json, sys, pathlib
import pandas as pd
work, rows = pathlib.Path(sys.argv[1]), {}
for run in ("tp-off", "tp-events", "tp-device-sync", "pp-events"):
    m = pd.read_csv(work / run / "metrics.csv")
    steps = m[m["step"] > 10]  # skip warm-up
    rows[run] = {"median_step_s": float(steps["step_time_s"].median()),
                 "median_comm_s": float(pd.to_numeric(steps["comm_time_s"], errors="coerce").median()),
                 "steps": int(len(steps)),
                 "final_loss": float(m["loss"].iloc[-1])}
pathlib.Path(sys.argv[2]).write_text(json.dumps(rows, indent=1) + "\n")
PY

say "3. phantom-emulate (eager, CUDA graph, bfloat16): ${EMU[*]}"
emulate=(-m phantom_parallel.emulate "${EMU[@]}" --layers 4 --device "$DEVICE"
         --power-source "$POWER" "${RESUME[@]}")
# eager and bf16 side by side in 5 interleaved rounds: the eager step is host-bound and drifts
# between runs, so PP/TP is read round by round (printed, and "round_ratios" in the JSON)
run $PY "${emulate[@]}" --strategy serial tp pp --ranks 8 64 256 --rounds 5 \
    --json "$OUT/emulate_eager.json" --gemm-table "$OUT/gemm_table_float32.yaml"
if [[ $DEVICE == cuda ]]; then
    run $PY "${emulate[@]}" --strategy tp pp --ranks 8 64 256 --cuda-graph \
        --json "$OUT/emulate_graph.json"
else
    echo "(CUDA graph replay skipped: --device $DEVICE)"
fi
run $PY "${emulate[@]}" --strategy tp pp --ranks 8 256 --dtype bfloat16 --rounds 5 \
    --json "$OUT/emulate_bf16.json" --gemm-table "$OUT/gemm_table_bfloat16.yaml"

say "4. summary"
run $PY benchmarks/gpu/summarize.py "$OUT" > "$OUT/summary.txt"  # not in a pipe: run() counts
cat "$OUT/summary.txt"
if ((${#FAILED[@]})); then say "FAILED: ${#FAILED[@]} part(s)"; exit 1; fi
say done
