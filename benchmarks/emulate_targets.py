"""Issue 9's targets, read from ``phantom-emulate`` JSON files: ratios side by side per p.

For every (p, device, dtype, graph mode) with both a TP and a PP row, prints PP/TP step time,
PP/TP counted matmul FLOPs, their quotient (the time ratio's excess over the FLOP ratio) and,
where the device has a sensor, PP/TP energy per step. Verdicts:

- CPU: PP/TP step time <= 1.25 x PP/TP FLOPs at every p;
- GPU: PP step <= TP step at p = 64 and 256 with CUDA graphs, <= 1.2 x TP eager.

Usage: ``python benchmarks/emulate_targets.py RESULT.json [...]`` (exit status 0 either way:
this reports, it does not gate).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(tp, pp) rows measured in the same run at the same p, device, dtype and mode."""
    key = lambda r: (r["p"], r["device"], r["dtype"], r["cuda_graph"], r["n"])  # noqa: E731
    tp = {key(r): r for r in rows if r["strategy"] == "tp"}
    return [(tp[key(r)], r) for r in rows if r["strategy"] == "pp" and key(r) in tp]


def verdict(tp: dict, pp: dict) -> str:
    time_ratio = pp["step_s"] / tp["step_s"]
    if tp["device"] == "cpu":
        ok = time_ratio <= 1.25 * pp["matmul_flops"] / tp["matmul_flops"]
        return f"{'PASS' if ok else 'FAIL'} (<= 1.25 x FLOP ratio)"
    if tp["cuda_graph"]:
        if tp["p"] not in (64, 256):
            return "-"
        return f"{'PASS' if time_ratio <= 1.0 else 'FAIL'} (graph: PP <= TP)"
    return f"{'PASS' if time_ratio <= 1.2 else 'FAIL'} (eager: PP <= 1.2 x TP)"


def main(paths: list[str]) -> int:
    """Print the table of the ``phantom-emulate`` JSON files ``paths``; 0 (it reports)."""
    print(f"{'file':28} {'dev':4} {'mode':5} {'p':>4} {'TP ms':>8} {'PP ms':>8} {'time':>6} "
          f"{'FLOPs':>6} {'t/F':>5} {'energy':>7}  verdict")
    for path in paths:
        rows = json.loads(Path(path).read_text())["rows"]
        for tp, pp in pairs(rows):
            t, f = pp["step_s"] / tp["step_s"], pp["matmul_flops"] / tp["matmul_flops"]
            e = (f"{pp['energy_j_per_step'] / tp['energy_j_per_step']:7.3f}"
                 if pp.get("energy_j_per_step") and tp.get("energy_j_per_step") else "      -")
            mode = "graph" if tp["cuda_graph"] else "eager"
            print(f"{Path(path).name[:28]:28} {tp['device']:4} {mode:5} {tp['p']:>4} "
                  f"{tp['step_s'] * 1e3:8.3f} {pp['step_s'] * 1e3:8.3f} {t:6.3f} {f:6.3f} "
                  f"{t / f:5.2f} {e}  {verdict(tp, pp)}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="phantom-emulate --json files")
    args = ap.parse_args(argv)
    for path in args.results:
        try:
            json.loads(path.read_text())["rows"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            ap.error(f"{path}: not a phantom-emulate JSON file ({type(err).__name__}: {err})")
    return main([str(p) for p in args.results])


if __name__ == "__main__":
    raise SystemExit(cli())
