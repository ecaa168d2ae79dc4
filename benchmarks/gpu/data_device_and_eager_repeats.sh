#!/usr/bin/env bash
# phantom-data generate on cuda vs cpu (bitwise x, targets within one quantum?), the GPU test of
# tests/test_data_device.py, and the eager PP/TP emulation repeated three times at p = 64, 256
# (each run TP and PP side by side in 5 interleaved rounds).
# Usage (device machine, repo root): OUT=DIR bash benchmarks/gpu/data_device_and_eager_repeats.sh
set -u
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m pytest --version 2>&1 | head -1
python3 -m pytest -q -p no:cacheprovider tests/test_data_device.py 2>&1 | tail -4
g=(-m phantom_parallel.data generate --d-in 64 --d-out 8 --teacher-width 4096 --teacher-layers 4
   --teacher-rank 8 --n-train 65536 --n-val 8192 --n-test 8192 --shard-rows 16384 --quiet)
/usr/bin/time -f "cpu generate %e s" python3 "${g[@]}" --out /tmp/dcpu --device cpu
/usr/bin/time -f "cuda generate %e s" python3 "${g[@]}" --out /tmp/dgpu --device cuda
python3 - /tmp/dcpu /tmp/dgpu "$OUT/data_device.json" <<'PY'
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
em=(-m phantom_parallel.emulate --width 16384 --layers 4 --ghosts 32 --batch 1024 --device cuda
    --steps 50 --warmup 10 --rounds 5 --power-source none --strategy tp pp --ranks 64 256)
for i in 1 2 3; do python3 "${em[@]}" --json "$OUT/eager_rep_$i.json" | tail -4; done
