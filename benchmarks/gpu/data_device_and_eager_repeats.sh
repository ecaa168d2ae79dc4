#!/usr/bin/env bash
# phantom-data generate on cuda vs cpu (bitwise x, targets within one quantum?), the GPU test of
# tests/test_data_device.py, and the eager PP/TP emulation repeated three times at p = 64, 256
# (each run TP and PP side by side in 5 interleaved rounds).
# Usage (device machine): OUT=DIR bash benchmarks/gpu/data_device_and_eager_repeats.sh
# (a relative DIR is relative to the current directory). Runs from the source tree
# (PYTHONPATH=src). A failed part is reported, the others still run, and the exit status is 1.
# CHECK_SCALE=smoke: toy sizes on the CPU (the "cuda" data set generated on the CPU too), as
# tests/test_benchmark_scripts.py runs it with a stand-in nvidia-smi (see check.sh).
set -uo pipefail
OUT=$(realpath -m "${OUT:?set OUT to the results folder}")
cd "$(dirname "$0")/../.."
mkdir -p "$OUT" || exit 1
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=()
run() { "$@" || { echo "!! failed ($?): $*"; FAILED+=("$*"); }; }
timed() {  # timed LABEL CMD...: run CMD as run() does, then print LABEL and its wall time
    local label=$1 t0=$EPOCHREALTIME
    shift
    run "$@"
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$label" 'BEGIN { printf "%s %.1f s\n", l, b - a }'
}
case ${CHECK_SCALE:-gpu} in
gpu)
    DEVICE=cuda
    DATA=(--teacher-width 4096 --n-train 65536 --n-val 8192 --n-test 8192 --shard-rows 16384)
    EMU=(--width 16384 --ghosts 32 --batch 1024 --steps 50 --warmup 10) ;;
smoke)
    DEVICE=cpu
    DATA=(--teacher-width 64 --n-train 2048 --n-val 512 --n-test 512 --shard-rows 1024)
    EMU=(--width 512 --ghosts 1 --batch 8 --steps 5 --warmup 1 --threads 1) ;;
*) echo "CHECK_SCALE=${CHECK_SCALE}: use gpu or smoke"; exit 2 ;;
esac
RESUME=()
[[ ${CHECK_RESUME:-0} == 1 ]] && RESUME=(--resume)  # as in check.sh

nvidia-smi --query-gpu=name --format=csv,noheader
run $PY -m pytest -q -p no:cacheprovider tests/test_data_device.py
g=(-m phantom_parallel.data generate --d-in 64 --d-out 8 --teacher-layers 4 --teacher-rank 8
   "${DATA[@]}" --quiet)
timed "cpu generate" $PY "${g[@]}" --out "$WORK/dcpu" --device cpu
timed "$DEVICE generate" $PY "${g[@]}" --out "$WORK/dgpu" --device "$DEVICE"
run $PY - "$WORK/dcpu" "$WORK/dgpu" "$OUT/data_device.json" <<'PY'
import json, sys, pathlib
import numpy as np
a, b, out = map(pathlib.Path, sys.argv[1:])
ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
rows = []
for split in ma["splits"]:
    for sa, sb in zip(ma["splits"][split]["shards"], mb["splits"][split]["shards"]):
        ya = np.load(a / sa["y"]).astype(np.float64); yb = np.load(b / sb["y"]).astype(np.float64)
        d = np.abs(ya - yb)
        rows.append({"split": split, "x_equal": sa["sha256_x"] == sb["sha256_x"],
                     "targets": int(d.size), "differing": int((d > 0).sum()), "max_abs_diff": float(d.max()),
                     "device_b": sb.get("device")})
res = {"teacher_equal": ma["teacher"] == mb["teacher"], "shards": rows}
out.write_text(json.dumps(res, indent=1) + "\n"); print(json.dumps(res)[:1500])
PY
em=(-m phantom_parallel.emulate "${EMU[@]}" --layers 4 --device "$DEVICE" --rounds 5
    --power-source none --strategy tp pp --ranks 64 256 "${RESUME[@]}")
for i in 1 2 3; do run $PY "${em[@]}" --json "$OUT/eager_rep_$i.json"; done
if ((${#FAILED[@]})); then echo "FAILED: ${#FAILED[@]} part(s)"; exit 1; fi
