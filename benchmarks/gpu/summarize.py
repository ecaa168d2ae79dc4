"""The GPU check's one table: energy extraction, ledger timing cost, emulation ratios.

Usage: ``python benchmarks/gpu/summarize.py RESULTS_DIR`` (the folder check.sh wrote).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from emulate_targets import main as emulate_table


def _energy(run: dict) -> None:
    summary, energy = run["summary"], run["energy"]
    print(f"serial trainer: {summary['steps']} steps, mean step "
          f"{summary['mean_step_time_s'] * 1e3:.2f} ms, final val loss {summary['final_val_loss']:.4g}")
    for dev in energy.get("devices", []):
        keys = ("device", "energy_j", "method", "counter_j", "integration_j", "rel_diff", "coverage")
        print("  energy: " + ", ".join(f"{k}={dev.get(k)}" for k in keys if k in dev))
    for w in energy.get("warnings", []):
        print(f"  warning: {w}")


def _ledger(rows: dict) -> None:
    base = rows["tp-off"]["median_step_s"]
    print("p = 2 on one device over gloo (median step after 10 warm-up steps):")
    for name, r in rows.items():
        extra = f" ({100 * (r['median_step_s'] / base - 1):+.1f} % vs timing off)" \
            if name.startswith("tp-") and name != "tp-off" else ""
        print(f"  {name:15} step {r['median_step_s'] * 1e3:8.2f} ms, comm {r['median_comm_s'] * 1e3:8.2f} ms"
              f"{extra}")
    events = rows["tp-events"]["median_step_s"] / base - 1
    print(f"  ledger events timing adds {100 * events:+.1f} % to the step: "
          f"{'PASS' if events <= 0.05 else 'FAIL'} (target <= 5 %)")


def main(folder: str) -> int:
    out = Path(folder)
    if (out / "serial.json").exists():
        _energy(json.loads((out / "serial.json").read_text()))
    if (out / "ledger.json").exists():
        _ledger(json.loads((out / "ledger.json").read_text()))
    files = sorted(str(p) for p in out.glob("emulate_*.json"))
    for path in files:
        data = json.loads(Path(path).read_text())
        rows = data["rows"]
        stopped = " (stopped before every --ranks was measured: the rows so far; --resume goes on)" \
            if data.get("complete") is False else ""
        print(f"\n{Path(path).name}:{stopped}")
        for q in data.get("round_ratios", []):
            print(f"  p={q['p']:>3} {q['strategy']}/{q['vs']} side by side: {q['median']:.3f} "
                  f"(median of {q['rounds']} rounds, {q['min']:.3f}-{q['max']:.3f})")
        for r in rows:
            e = f"{r['energy_j_per_step']:.3f} J" if r["energy_j_per_step"] is not None else "-"
            host = f" (host {r['host_s'] * 1e3:.3f})" if r.get("host_s") is not None else ""
            print(f"  {r['strategy']:6} p={r['p']:>3} {r['dtype']:8} "
                  f"step {r['step_s'] * 1e3:8.3f} ms{host} "
                  f"{r['achieved_flop_rate'] / 1e12:7.2f} TFLOP/s ops {r['ops_per_step']:>5} "
                  f"energy/step {e} ({r['energy_method']})")
    print()
    return emulate_table(files)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
