"""Held-out validation of the time model on this machine's committed CPU runs.

Reads the ``phantom-bench`` JSON files of a results folder (default
:data:`RESULTS`, written by ``benchmarks/cpu/bench_local.sh``: gloo, L = 4, 1 thread per rank,
(n, k, B) = (512, 16, 64), (1024, 32, 128), (2048, 64, 256) at p = 2 and (512, 16, 64),
(1024, 32, 128) at p = 4; medians of measured TP and PP steps, with the seconds in collectives
from the ledger), fits the ``local-cpu`` profile on the runs at p <= 2 and n <= 512 only -
``gemm_efficiency`` on those runs' GEMM microbenchmarks (:func:`gemm_fitted`), the
communication constants and ``host_op_s`` on their steps
(:func:`phantom_parallel.calibration.fit`, mode ``sync``) - and predicts the step time of
every other run (the profile's streaming bandwidth and elementwise rate are its measured
constants, not fitted here). A run whose ranks x threads exceed the
machine's cores (``env.cpu_count`` in its JSON) is marked oversubscribed and kept out of the
target's median (its ranks time-share cores, which the model does not describe).
With ``--gemms`` the profile also carries the folder's measured GEMM tables
(``gemm_table_n*.yaml``, every GEMM shape of those steps timed on one thread by
``phantom-emulate --gemm-table``): GEMMs take their measured times and ``gemm_efficiency`` is
not used.
``--markdown`` prints the error table that docs/method.md carries, one per setting
(tests/test_projection.py checks them); ``--update-docs`` writes it there.

    python benchmarks/projection/validate_local.py --markdown [--gemms] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from phantom_parallel import calibration, hardware
from phantom_parallel.bench_analysis import micro_rows
from phantom_parallel.costs import FFNShape

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "2026-12-05g-cpu-bench"
FIT_WIDTH = 512
FIT_RANKS = 2

def markers(gemms: bool) -> tuple[str, str]:
    """The comments around this script's table in docs/method.md (one pair per setting)."""
    tag = "validate_local.py --gemms" if gemms else "validate_local.py"
    return f"<!-- {tag} begin -->", f"<!-- {tag} end -->"


def oversubscribed(d: dict) -> bool:
    """Ranks x threads per rank above the run's cores (``env.cpu_count``)."""
    env = d["env"]
    return d["config"]["world_size"] * env.get("threads_per_rank", 1) > env["cpu_count"]


def runs(results: Path = RESULTS) -> list[tuple[str, calibration.Run, bool]]:
    """``(file name, run, oversubscribed)`` for the TP and PP medians of every bench file."""
    out = []
    for f in sorted(results.glob("*.json")):
        d = json.loads(f.read_text())
        c = d["config"]
        for s in ("tp", "pp"):
            v = d["strategies"][s]
            shape = FFNShape(c["d_in"], c["width"], c["layers"], c["d_out"], c["batch"],
                             c["world_size"], c["ghosts"] if s == "pp" else 0, 4)
            run = calibration.Run(s, shape, v["comm"]["median_s"], v["compute"]["median_s"],
                                  v["step"]["median_s"])
            out.append((f.name, run, oversubscribed(d)))
    return out


def is_fit(run: calibration.Run) -> bool:
    """A run the constants are fitted on: p <= 2 and n <= 512."""
    return run.shape.width <= FIT_WIDTH and run.shape.p <= FIT_RANKS


def gemm_tables(results: Path) -> list[Path]:
    """The measured GEMM tables of a results folder."""
    return sorted(results.glob("gemm_table_n*.yaml"))


def _fit_runs(results: Path) -> list[tuple[Path, dict]]:
    """``(file, parsed JSON)`` of the fit runs (p <= 2, n <= 512)."""
    out = [(f, json.loads(f.read_text())) for f in sorted(results.glob("*.json"))]
    return [(f, d) for f, d in out
            if d["config"]["width"] <= FIT_WIDTH and d["config"]["world_size"] <= FIT_RANKS]


def folder_problem(results: Path, gemms: bool) -> str | None:
    """Why ``results`` cannot be validated (one line naming the file), or None: every JSON file
    must be a ``phantom-bench`` report, and without ``gemms`` the fit runs must carry the GEMM
    microbenchmarks of their steps (``calibration.matmul_concurrent``, written since
    2026-12-04)."""
    files = sorted(results.glob("*.json")) if results.is_dir() else []
    if not files:
        return f"--results {results}: no phantom-bench JSON files there"
    for f in files:
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError) as err:
            return f"--results: {f}: not JSON ({err})"
        if not isinstance(d, dict) or not {"config", "strategies", "env"} <= d.keys():
            return f"--results: {f}: not a phantom-bench report (no config/strategies/env)"
    for f, d in _fit_runs(results):
        if not gemms and "matmul_concurrent" not in d.get("calibration", {}):
            return (f"--results: {f}: no GEMM microbenchmarks (calibration.matmul_concurrent; "
                    "an earlier phantom-bench): gemm_efficiency cannot be fitted on this folder")
    return None


def fit_files(results: Path) -> list[Path]:
    """The bench files of the fit runs (p <= 2, n <= 512)."""
    return [f for f, _ in _fit_runs(results)]


def gemm_fitted(hw: hardware.Profile, results: Path) -> hardware.Profile:
    """``hw`` with ``gemm_efficiency`` fitted on the GEMM microbenchmarks of the fit runs only
    (``matmul_concurrent``: every per-rank GEMM shape of those steps, timed on both ranks at
    once, :func:`phantom_parallel.bench_analysis.micro_rows`): the GEMMs alone identify it, where
    the steps' compute time confounds it with every cost the model lacks."""
    rows = [row for _, d in _fit_runs(results)
            for row in micro_rows(d["calibration"], d["config"]["world_size"], 4, "sync")["gemm"]]
    got = calibration.fit_rows(hw, ("gemm_efficiency", "host_op_s"), rows)
    return calibration.relabel(hw.with_values(gemm_efficiency=got["gemm_efficiency"]), hw,
                               ("gemm_efficiency",), f"the GEMM microbenchmarks of {len(rows)} "
                               f"rows of the runs at p <= {FIT_RANKS}, n <= {FIT_WIDTH}")


def fitted(results: Path = RESULTS, rows: list[tuple[str, calibration.Run, bool]] | None = None,
           gemms: bool = False) -> hardware.Profile:
    """``local-cpu`` fitted on the runs at p <= 2, n <= 512 (of ``rows``, else of
    ``results``): the GEMMs' efficiency from the folder's measured GEMM tables (``gemms``) or
    from the fit runs' GEMM microbenchmarks (:func:`gemm_fitted`), then the communication
    constants and ``host_op_s`` on the runs' steps (:func:`phantom_parallel.calibration.fit`)."""
    rows = runs(results) if rows is None else rows
    hw = hardware.load("local-cpu")
    if gemms:
        hw = hw.with_gemm_table(*hardware.read_gemm_tables(gemm_tables(results)))
    else:
        hw = gemm_fitted(hw, results)
    train = [r for _, r, _ in rows if is_fit(r)]
    return calibration.fit(hw, train, mode="sync", compute=("host_op_s",),
                           label=f"phantom-bench runs at p <= {FIT_RANKS}, n <= {FIT_WIDTH}")


def _predictions(hw: hardware.Profile, rows: list[tuple[str, calibration.Run, bool]],
                 ) -> list[tuple[str, calibration.Run, bool, float, float]]:
    """``(file, run, oversubscribed, modelled s, relative error)`` of every row."""
    out = []
    for f, r, o in rows:
        t = calibration.model(r, hw, "sync").total_s
        out.append((f, r, o, t, t / r.step_s - 1))
    return out


def _held_out(preds: list[tuple[str, calibration.Run, bool, float, float]],
              ) -> tuple[list[float], list[float]]:
    clean = [abs(e) for _, r, o, _, e in preds if not is_fit(r) and not o]
    over = [abs(e) for _, r, o, _, e in preds if not is_fit(r) and o]
    return clean, over


def errors(results: Path = RESULTS, gemms: bool = False) -> tuple[list[float], list[float]]:
    """|relative step-time error| of the held-out runs: (not oversubscribed, oversubscribed)."""
    rows = runs(results)
    return _held_out(_predictions(fitted(results, rows, gemms), rows))


def _summary(name: str, errs: list[float]) -> str:
    if not errs:
        return f"{name}: none"
    return (f"{name}: {len(errs)}, step time median |error| {statistics.median(errs):.0%}, "
            f"max {max(errs):.0%}")


def markdown(results: Path = RESULTS, gemms: bool = False) -> str:
    """The error table and the median absolute error of the held-out runs."""
    rows = runs(results)
    hw = fitted(results, rows, gemms)
    preds = _predictions(hw, rows)
    lines = ["| file | strategy | p | n | k | B | row | measured ms | modelled ms | error |",
             "|" + "---|" * 10]
    for f, r, o, t, err in preds:
        use = "fit" if is_fit(r) else "held out, oversubscribed" if o else "held out"
        k = r.shape.ghosts if r.strategy == "pp" else "-"
        lines.append(f"| {f} | {r.strategy} | {r.shape.p} | {r.shape.width} | {k} "
                     f"| {r.shape.batch} | {use} "
                     f"| {r.step_s * 1e3:.2f} | {t * 1e3:.2f} | {err:+.0%} |")
    keys = (*calibration.COMM_KEYS, *calibration.compute_keys(hw))
    consts = ", ".join(f"{k} = {hw[k]:.3g} {hw.constants[k].unit}" for k in keys)
    clean, over = _held_out(preds)
    measured = (f"GEMMs measured ({len(hw.gemm_table)} shapes, "
                f"{', '.join(p.name for p in gemm_tables(results))}); " if gemms else "")
    lines += ["", f"{measured}Fitted on p <= {FIT_RANKS}, n <= {FIT_WIDTH}: {consts}. "
              f"{_summary('Held-out runs', clean)} (target: median within 25 %); "
              f"{_summary('held-out oversubscribed runs (not in the target)', over)}."]
    return "\n".join(lines) + "\n"


def update_docs(results: Path = RESULTS, path: Path = ROOT / "docs" / "method.md",
                gemms: bool = False) -> None:
    """Replace the block between the :func:`markers` in ``path`` by the table."""
    begin, end = markers(gemms)
    head, rest = path.read_text().split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{markdown(results, gemms)}{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print the error table (Markdown)")
    ap.add_argument("--update-docs", action="store_true", help="write it into docs/method.md")
    ap.add_argument("--gemms", action="store_true",
                    help="GEMM times from the folder's measured gemm_table_n*.yaml "
                         "(gemm_efficiency not fitted)")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help=f"folder of phantom-bench JSON files (default: {RESULTS.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    problem = folder_problem(args.results, args.gemms)
    if problem:
        ap.error(problem)
    if args.gemms and not gemm_tables(args.results):
        ap.error(f"--gemms: no gemm_table_n*.yaml in --results {args.results}")
    if args.update_docs:
        update_docs(args.results, gemms=args.gemms)
    if args.markdown or not args.update_docs:
        print(markdown(args.results, args.gemms), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
