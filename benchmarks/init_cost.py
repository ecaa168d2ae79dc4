"""Initialisation time and peak host memory of one rank's TP model: rank-local tiles vs the
previous rule (the whole n x n layer drawn on every rank, then sliced), side by side.

Each variant runs in a fresh subprocess (peak RSS is per process) that builds rank ``--rank``
of a ``--ranks``-rank TP model on the CPU (collectives are local stand-ins; init needs none)
and reports wall seconds of ``build_model`` and the process's peak resident set (``VmHWM``).

Usage: ``python benchmarks/init_cost.py --width 16384 --layers 4 --ranks 8 [--json OUT.json]``
(``--json``: both variants' numbers, the ratios, the command and the versions).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path


def child(variant: str, width: int, layers: int, ranks: int, rank: int) -> dict[str, float]:
    from phantom_parallel import models, param_init
    from phantom_parallel.emulate import StandInComm

    if variant == "whole-layer":  # the rule before rank-local tiles: draw all, keep a slice
        def whole_then_slice(seed, name, out_f, in_f, dtype, *, rows=None, cols=None, tile=0,
                             out=None):
            gen = param_init._generator("dense", seed, name)
            bound = 1.0 / in_f**0.5
            w = param_init._uniform((out_f, in_f), bound, gen, dtype)
            b = param_init._uniform((out_f,), bound, gen, dtype)
            rows = rows or range(out_f)
            cols = cols or range(in_f)
            w, b = w[rows.start:rows.stop, cols.start:cols.stop], b[rows.start:rows.stop]
            if out is not None:
                out[0].copy_(w)
                out[1].copy_(b)
            return w, b

        models.dense_init = whole_then_slice
    def rss(field: str) -> int:
        return next(int(line.split()[1]) * 1024 for line in
                    Path("/proc/self/status").read_text().splitlines() if line.startswith(field))

    cfg = models.FFNConfig(64, width, layers, 8)
    baseline = rss("VmRSS:")  # the interpreter and torch, before any parameter exists
    t0 = time.perf_counter()
    models.build_model("tp", cfg, StandInComm(ranks, rank), seed=0)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    hwm = rss("VmHWM:")
    return {"init_s": seconds, "peak_rss_bytes": hwm, "baseline_rss_bytes": baseline,
            "init_peak_bytes": hwm - baseline}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=16384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if min(args.width, args.layers, args.ranks) < 1 or not 0 <= args.rank < args.ranks:
        ap.error("--width, --layers and --ranks >= 1, 0 <= --rank < --ranks")
    if args.json is not None and not args.json.parent.is_dir():
        ap.error(f"--json {args.json}: folder {args.json.parent} does not exist")
    if args.child:
        print(json.dumps(child(args.child, args.width, args.layers, args.ranks, args.rank)))
        return 0
    base = [sys.executable, __file__, "--width", str(args.width), "--layers", str(args.layers),
            "--ranks", str(args.ranks), "--rank", str(args.rank)]
    out = {}
    for variant in ("whole-layer", "rank-local"):
        res = subprocess.run([*base, "--child", variant], capture_output=True, text=True, check=True)
        out[variant] = json.loads(res.stdout.splitlines()[-1])
    print(f"rank {args.rank} of p = {args.ranks}, TP, n = {args.width}, L = {args.layers} (CPU):")
    gib = 2**30
    for variant, r in out.items():
        print(f"  {variant:12} init {r['init_s']:7.2f} s, peak RSS {r['peak_rss_bytes'] / gib:6.2f} GiB "
              f"(of which before init {r['baseline_rss_bytes'] / gib:.2f} GiB, added by init "
              f"{r['init_peak_bytes'] / gib:.2f} GiB, the rank's parameters included)")
    a, b = out["whole-layer"], out["rank-local"]
    ratios = {key: b[key] / a[key] for key in ("init_s", "init_peak_bytes", "peak_rss_bytes")}
    print(f"  rank-local / whole-layer: time {ratios['init_s']:.3f}, "
          f"peak host memory added by init {ratios['init_peak_bytes']:.3f}, "
          f"peak RSS of the process {ratios['peak_rss_bytes']:.3f} "
          f"(target: <= 0.25 for init time and init's peak memory)")
    if args.json is not None:
        import torch

        args.json.write_text(json.dumps({
            "width": args.width, "layers": args.layers, "ranks": args.ranks, "rank": args.rank,
            "variants": out, "rank_local_over_whole_layer": ratios, "command": sys.argv,
            "versions": {"torch": torch.__version__, "python": platform.python_version()},
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
