"""Validate the time model (``phantom_parallel.timing``) on the committed H200 emulation runs.

Reads benchmarks/results/2026-12-04-h200-fused/check/emulate_{eager,graph,bf16}.json (rank 0's share of a
p-rank step, collectives replaced by local stand-ins, measured by ``bash
benchmarks/gpu/check.sh``) and predicts each row's step time and energy per step from the
``nvidia-h200`` profile with ``comm="stand-in"``, the row's mode (eager or CUDA graph) and its
counted operators (:func:`counted_ops`: those of a steady step and its views).

Four constants of the profile are fitted, each on one row, and marked so in the table:
``gemm_efficiency`` on the serial eager row (not when the profile carries measured GEMMs,
``gemm_table``: they set the efficiency), ``host_op_s`` on the pp p = 64 eager row (launch
bound: its measured host dispatch time ``host_s`` / ops, or step / ops in rows without
``host_s``), ``kernel_s`` on the pp p = 64 graph row ((step - busy) / kernels, the
operators that are not views) and ``power_idle_w`` on the pp p = 64 eager row again (its
measured joules less the modelled busy joules, over its measured step less the busy time:
the power while the GPU waits on the host; not fitted when that row has no energy). All other
rows are held out. The table is modelled with the constants fitted on the folder it reads
(:func:`refitted`, rounded to 3 digits as the profile holds them), so another folder's fit rows
are its own fits. ``--fit`` prints the fitted values (tests/test_hardware.py checks that the
profile holds those of the committed folder); ``--markdown`` prints the table that
docs/method.md carries (tests/test_projection.py checks it is this script's output);
``--update-docs`` writes it there (the committed folder and profile only: :data:`RESULTS`).

    python benchmarks/projection/validate_h200.py --markdown [--results DIR] [--gemms]

After a new GPU check (``bash benchmarks/gpu/check.sh DIR``): ``--results DIR --gemms``
validates the profile with that run's measured GEMM tables (paste them into
config/hardware/nvidia-h200.yaml as ``gemm_table`` to make them the profile's).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from phantom_parallel import hardware
from phantom_parallel.calibration import compute_keys
from phantom_parallel.constants import DTYPE_BYTES
from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.timing import ADAM_STATE_OPS, ops_per_step, step_time

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "2026-12-04-h200-fused" / "check"
FILES = ("emulate_eager.json", "emulate_graph.json", "emulate_bf16.json")
FIT_ROWS = {  # constant -> (file, strategy, p) of the one row it is fitted on
    "gemm_efficiency": ("emulate_eager.json", "serial", 1),
    "host_op_s": ("emulate_eager.json", "pp", 64),
    "kernel_s": ("emulate_graph.json", "pp", 64),
    "power_idle_w": ("emulate_eager.json", "pp", 64),
}


def rows(results: Path = RESULTS) -> list[tuple[str, dict]]:
    """``(file name, row)`` for every emulation row of ``results``."""
    return [(f, r) for f in FILES for r in json.loads((results / f).read_text())["rows"]]


RECORD_VIEWS_L4 = {"serial": 47, "tp": 50, "pp": 104}
"""Views per steady step (L = 4) of the code that made the committed H200 rows, which do not
carry ``view_ops_per_step``: serial and TP as today; PP rank 0 of that earlier phantom layer,
which dispatched as many operators and views as the busiest rank of the layer of commit
16d0a4b (counted there on CPU by tests/test_projection.py: 189 operators, 104 views)."""


def cost_of(r: dict):
    """The cost model's count of row ``r``. (The committed PP rows at p > 2 ran rank 0 of an
    earlier layer, whose decompression read the (p-1)k peers' ghost rows, not all p k:
    2Bmk fewer matmul FLOPs per layer each way than this counts: 1.4 % of the step's at
    p = 8 and 64, 0.4 % at p = 256.)"""
    shape = FFNShape(64, r["n"], r["layers"], 8, r["batch"], r["p"], r["k"] or 0, DTYPE_BYTES[r["dtype"]])
    return predict(r["strategy"], shape)


def counted_ops(r: dict, cost) -> tuple[float, float]:
    """(operators, views) of a steady step of row ``r`` (``cost``: its :func:`cost_of`). Rows with ``view_ops_per_step`` count
    a steady step; the committed H200 rows (without it) counted the first step, which also
    creates Adam's state: :data:`ADAM_STATE_OPS` per parameter tensor come off, and the views
    are those of the code that made them (:data:`RECORD_VIEWS_L4`)."""
    if "view_ops_per_step" in r:
        return r["ops_per_step"], r["view_ops_per_step"]
    return (r["ops_per_step"] - ADAM_STATE_OPS * cost.param_tensors_per_rank,
            ops_per_step(r["strategy"], r["layers"], r["p"], RECORD_VIEWS_L4))


def model(r: dict, hw: hardware.Profile):
    cost = cost_of(r)
    ops, views = counted_ops(r, cost)
    return step_time(cost, hw, mode="graph" if r["cuda_graph"] else "eager",
                     comm="stand-in", ops=ops, views=views)


def _row(results: Path, file: str, strategy: str, p: int) -> dict:
    return next(r for f, r in rows(results)
                if f == file and r["strategy"] == strategy and r["p"] == p)


def fitted_keys(hw: hardware.Profile) -> list[str]:
    """The constants of :data:`FIT_ROWS` that are fitted: all but ``gemm_efficiency`` when the
    profile has measured GEMMs (``gemm_table``), as in :func:`calibration.compute_keys`."""
    return [k for k in FIT_ROWS if k != "gemm_efficiency" or k in compute_keys(hw)]


def fit(hw: hardware.Profile, results: Path = RESULTS) -> dict[str, float]:
    """The fitted constants (:func:`fitted_keys`), in the order of :data:`FIT_ROWS` (each uses
    the previous)."""
    out = {}
    if "gemm_efficiency" in fitted_keys(hw):
        s = _row(results, *FIT_ROWS["gemm_efficiency"])
        # serial eager is GEMM-bound: scale the efficiency until the modelled step matches
        eff = hw["gemm_efficiency"]
        for _ in range(50):
            t = model(s, hw.with_values(gemm_efficiency=eff))
            eff *= t.gemm_s / max(t.gemm_s + s["step_s"] - t.total_s, 1e-12)
        hw = hw.with_values(gemm_efficiency=eff)
        out["gemm_efficiency"] = eff
    e = _row(results, *FIT_ROWS["host_op_s"])  # its measured dispatch time where it has one
    out["host_op_s"] = e.get("host_s", e["step_s"]) / counted_ops(e, cost_of(e))[0]
    g = _row(results, *FIT_ROWS["kernel_s"])
    busy = model(g, hw.with_values(kernel_s=0.0)).busy_s
    ops, views = counted_ops(g, cost_of(g))
    out["kernel_s"] = (g["step_s"] - busy) / (ops - views)
    w = _row(results, *FIT_ROWS["power_idle_w"])
    if w.get("energy_j_per_step") is not None:  # launch-bound: the device mostly waits on the host
        t = model(w, hw)  # the power that makes its measured joules over its measured step
        out["power_idle_w"] = ((w["energy_j_per_step"] - t.energy_compute_j)
                               / max(w["step_s"] - t.busy_s, 1e-12))
    return out


def refitted(hw: hardware.Profile, results: Path = RESULTS) -> hardware.Profile:
    """``hw`` with the constants :func:`fit` fits on ``results``, rounded to 3 digits (as the
    profile holds them)."""
    return hw.with_values(**{k: float(f"{v:.3g}") for k, v in fit(hw, results).items()})


def table(hw: hardware.Profile, results: Path = RESULTS) -> list[dict]:
    """One dict per row: measured and modelled step (ms) and energy (J), errors, fit/held-out."""
    fitted = {FIT_ROWS[k] for k in fitted_keys(hw)}
    out = []
    for f, r in rows(results):
        t = model(r, hw)
        meas_j = r.get("energy_j_per_step")
        out.append({
            "file": f, "strategy": r["strategy"], "p": r["p"], "dtype": r["dtype"],
            "mode": "graph" if r["cuda_graph"] else "eager",
            "use": "fit" if (f, r["strategy"], r["p"]) in fitted else "held out",
            "measured_ms": r["step_s"] * 1e3, "modelled_ms": t.total_s * 1e3,
            "time_err": t.total_s / r["step_s"] - 1,
            "measured_j": meas_j, "modelled_j": t.energy_j,
            "energy_err": None if meas_j is None else t.energy_j / meas_j - 1,
        })
    return out


def markdown(hw: hardware.Profile, results: Path = RESULTS) -> str:
    """The error table as Markdown, with the median absolute errors of the held-out rows."""
    rs = table(hw, results)
    lines = ["| file | strategy | p | dtype | mode | row | measured ms | modelled ms | time err "
             "| measured J | modelled J | energy err |", "|" + "---|" * 12]
    for r in rs:
        ej = "-" if r["energy_err"] is None else f"{r['energy_err']:+.0%}"
        mj = "-" if r["measured_j"] is None else f"{r['measured_j']:.3f}"
        lines.append(f"| {r['file']} | {r['strategy']} | {r['p']} | {r['dtype']} | {r['mode']} "
                     f"| {r['use']} | {r['measured_ms']:.3f} | {r['modelled_ms']:.3f} "
                     f"| {r['time_err']:+.0%} | {mj} | {r['modelled_j']:.3f} | {ej} |")
    held = [r for r in rs if r["use"] == "held out"]
    t_med = statistics.median(abs(r["time_err"]) for r in held)
    t_max = max(abs(r["time_err"]) for r in held)
    e_errs = [abs(r["energy_err"]) for r in held if r["energy_err"] is not None]
    energy = (f"energy per step median |error| {statistics.median(e_errs):.0%} (modelled vs NVML "
              "counter)" if e_errs else "energy per step not measured (no sensor)")
    lines += ["", f"Held-out rows: {len(held)}; step time median |error| {t_med:.0%}, max "
              f"{t_max:.0%} (target: within 30 %); {energy}."]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- validate_h200.py begin -->", "<!-- validate_h200.py end -->"


def update_docs(hw: hardware.Profile, path: Path = ROOT / "docs" / "method.md",
                results: Path = RESULTS) -> None:
    """Replace the block between :data:`BEGIN` and :data:`END` in ``path`` by the table."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{markdown(hw, results)}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", action="store_true", help="print the fitted constants")
    ap.add_argument("--markdown", action="store_true", help="print the error table (Markdown)")
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/method.md (between its markers)")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="folder of check.sh's emulate_{eager,graph,bf16}.json (default: "
                         f"{RESULTS.relative_to(ROOT)})")
    ap.add_argument("--gemms", action="store_true",
                    help="give the profile the folder's measured GEMM tables (gemm_table_*.yaml, "
                         "written by check.sh): gemm_efficiency is then not fitted")
    args = ap.parse_args(argv)
    if args.update_docs and (args.gemms or args.results.resolve() != RESULTS):
        ap.error("--update-docs writes the committed table: not with --results or --gemms "
                 "(make the folder RESULTS and its GEMM tables the profile's first)")
    missing = [f for f in FILES if not (args.results / f).is_file()]
    if missing:
        ap.error(f"--results {args.results}: no {', '.join(missing)} there")
    have = {(f, r["strategy"], r["p"]) for f, r in rows(args.results)}
    for key, (file, strategy, p) in FIT_ROWS.items():
        if (file, strategy, p) not in have:
            stopped = json.loads((args.results / file).read_text()).get("complete") is False
            ap.error(f"--results {args.results}: {file} has no {strategy} p = {p} row, which "
                     f"{key} is fitted on" + ("; the run that wrote it was stopped (check.sh "
                                              "with CHECK_RESUME=1 goes on)" if stopped else ""))
    tables = sorted(args.results.glob("gemm_table_*.yaml"))
    if args.gemms and not tables:
        ap.error(f"--gemms: no gemm_table_*.yaml in --results {args.results}")
    hw = hardware.load("nvidia-h200")
    if args.gemms:
        hw = hw.with_gemm_table(*hardware.read_gemm_tables(tables))
    if args.fit:
        for k, v in fit(hw, args.results).items():
            print(f"{k}: {v:.3g}")
    if args.update_docs:
        update_docs(refitted(hw))
    if args.markdown or not (args.fit or args.update_docs):
        print(markdown(refitted(hw, args.results), args.results), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
