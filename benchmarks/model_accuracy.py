"""Summarise repeated ``phantom-bench`` runs: is the PP cost-model target met, run after run?

A target of "within 15 %" can only be checked where the measurement itself reproduces to
better than 15 %; this script prints both, per configuration (width, ghosts, batch, ranks):

* per run: PP, TP median step (ms), PP/TP, PP measured/predicted for the target model
  (re-calibrated on the run's TP steps) and for the microbenchmark-only diagnostic, verdicts;
* per configuration: the run-to-run spread of PP's median step time (coefficient of
  variation and max/min), and how many runs meet the target.

Usage::

    python benchmarks/model_accuracy.py RUN.json [RUN.json ...] [--csv OUT.csv]

where each ``RUN.json`` was written by ``phantom-bench --json``. Reads only those files.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def run_row(path: Path) -> dict[str, Any]:
    """One row of numbers from one ``phantom-bench --json`` file (times in ms)."""
    try:
        d = json.loads(path.read_text())
        c, st, ch = d["config"], d["strategies"], d["checks"]
        return {
            "file": str(path),
            "width": c["width"], "ghosts": c["ghosts"], "batch": c["batch"],
            "layers": c["layers"], "p": c["world_size"], "date": d["env"]["date"],
            "load_1min_after": d["env"]["loadavg_after"][0],
            "pp_ms": 1e3 * st["pp"]["step"]["median_s"],
            "tp_ms": 1e3 * st["tp"]["step"]["median_s"],
            "dtensor_ms": 1e3 * st["dtensor"]["step"]["median_s"],
            "pp_over_tp": d["ratios"]["pp_over_tp"],
            "tp_over_dtensor": d["ratios"]["tp_over_dtensor"],
            "pp_meas_over_pred": ch["pp_within_15pct_of_model"]["ratio"],
            "pp_verdict": ch["pp_within_15pct_of_model"]["verdict"],
            "pp_meas_over_pred_micro": ch["pp_within_15pct_of_microbenchmark_model"]["ratio"],
            "tp_dtensor_verdict": ch["tp_no_slower_than_dtensor"]["verdict"],
        }
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise SystemExit(f"model_accuracy: {path}: not a phantom-bench --json file of this "
                         f"version ({type(exc).__name__}: {exc})") from exc


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per configuration: runs, PP step spread, target hits."""
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["width"], r["ghosts"], r["batch"], r["layers"], r["p"])].append(r)
    out = []
    for (n, k, b, layers, p), rs in sorted(groups.items()):
        pp = [r["pp_ms"] for r in rs]
        ratios = [r["pp_meas_over_pred"] for r in rs]
        out.append({
            "width": n, "ghosts": k, "batch": b, "layers": layers, "p": p, "runs": len(rs),
            "pp_ms_mean": statistics.fmean(pp),
            "pp_ms_cv": statistics.stdev(pp) / statistics.fmean(pp) if len(pp) > 1 else 0.0,
            "pp_ms_max_over_min": max(pp) / min(pp),
            "meas_over_pred_min": min(ratios), "meas_over_pred_max": max(ratios),
            "pp_target_met": sum(r["pp_verdict"] == "PASS" for r in rs),
            "tp_dtensor_target_met": sum(r["tp_dtensor_verdict"] == "PASS" for r in rs),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="phantom-bench --json files")
    ap.add_argument("--csv", type=Path, help="also write the per-run rows as CSV")
    args = ap.parse_args(argv)
    rows = sorted((run_row(p) for p in args.runs), key=lambda r: (r["width"], r["date"]))
    print(f"{'n':>5} {'k':>4} {'B':>4}  {'date':19}  {'load':>5} {'PP ms':>8} {'TP ms':>8} "
          f"{'PP/TP':>6} {'TP/DT':>6} {'PP m/p':>7} {'target':>6} {'micro m/p':>9}")
    for r in rows:
        print(f"{r['width']:>5} {r['ghosts']:>4} {r['batch']:>4}  {r['date'][:19]:19}  "
              f"{r['load_1min_after']:>5.2f} {r['pp_ms']:>8.2f} {r['tp_ms']:>8.2f} "
              f"{r['pp_over_tp']:>6.3f} {r['tp_over_dtensor']:>6.3f} "
              f"{r['pp_meas_over_pred']:>7.3f} {r['pp_verdict']:>6} "
              f"{r['pp_meas_over_pred_micro']:>9.3f}")
    print()
    print("per configuration: PP median step run to run (CV, max/min) and target hits")
    for s in summarise(rows):
        print(f"  n={s['width']} k={s['ghosts']} B={s['batch']} L={s['layers']} p={s['p']}: "
              f"{s['runs']} runs, PP {s['pp_ms_mean']:.2f} ms mean, CV {100 * s['pp_ms_cv']:.1f}%, "
              f"max/min {s['pp_ms_max_over_min']:.3f}; PP meas/pred "
              f"{s['meas_over_pred_min']:.3f}..{s['meas_over_pred_max']:.3f}, target met in "
              f"{s['pp_target_met']}/{s['runs']}; TP<=DTensor in "
              f"{s['tp_dtensor_target_met']}/{s['runs']}")
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
