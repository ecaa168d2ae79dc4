#!/usr/bin/env bash
# What the ledger's collective timing costs a real step, with repeats: TP, p = 2 on one GPU over
# gloo, n = 2048, L = 4, B = 1024, 150 steps, `--comm-timing off` and `events` interleaved three
# times each (one run of each, as in check.sh, is within the run-to-run spread of about 5 %).
# Usage: bash benchmarks/gpu/ledger_repeats.sh OUT_DIR   (writes OUT_DIR/ledger_repeats.json and
# each run's output to OUT_DIR/ledger_repeats.log; a relative OUT_DIR is relative to the
# current directory)
set -euo pipefail
OUT=$(realpath -m "${1:?usage: ledger_repeats.sh OUT_DIR}")
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$PY -m phantom_parallel.data generate --out "$W/data" --d-in 64 --d-out 8 --teacher-width 512 \
    --teacher-layers 4 --n-train 32768 --n-val 4096 --shard-rows 8192 --quiet
for rep in 1 2 3; do
    for t in off events; do
        $PY -m torch.distributed.run --standalone --nproc-per-node 2 -m phantom_parallel.train \
            --data "$W/data" --layers 4 --batch-size 1024 --device cuda --no-progress \
            --run-dir "$W/tp-$t-$rep" --strategy tp --width 2048 --epochs 5 --max-steps 150 \
            --backend gloo --power-source none --comm-timing "$t" >> "$OUT/ledger_repeats.log" 2>&1
        tail -1 "$OUT/ledger_repeats.log"
    done
done
$PY - "$W" "$OUT/ledger_repeats.json" <<'PY'
import json, pathlib, statistics, sys
import pandas as pd
w = pathlib.Path(sys.argv[1])
rows = []
for d in sorted(w.glob("tp-*")):
    m = pd.read_csv(d / "metrics.csv")
    s = m[m["step"] > 10]  # skip warm-up
    rows.append({"run": d.name, "timing": d.name.split("-")[1],
                 "median_step_s": float(s["step_time_s"].median())})
pathlib.Path(sys.argv[2]).write_text(json.dumps(rows, indent=1))
for r in rows:
    print(r)
for t in ("off", "events"):
    print(t, statistics.median(r["median_step_s"] for r in rows if r["timing"] == t))
PY
