"""Held-out validation of the time model on this machine's committed CPU runs.

Reads benchmarks/results/2026-11-22-cpu-p2/n{512,1024,2048}_r*.json (``phantom-bench`` at p = 2
on the 2-vCPU KVM guest, gloo, L = 4, (n, k, B) = (512, 16, 64), (1024, 32, 128), (2048, 64,
256): medians of measured TP and PP steps, with the seconds in collectives from the ledger), fits the ``local-cpu`` profile's
communication and compute constants (:func:`phantom_parallel.calibration.fit`, mode ``sync``)
on the n = 512 runs only, and predicts the step time of the n = 1024 and n = 2048 runs. No p = 4
run is committed, so p = 4 is not predicted here. ``--markdown`` prints the error table that
docs/method.md carries (tests/test_projection.py checks it); ``--update-docs`` writes it there.

    python benchmarks/projection/validate_local.py --markdown
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from phantom_parallel import calibration, hardware
from phantom_parallel.costs import FFNShape

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "2026-11-22-cpu-p2"
FIT_WIDTH = 512
BEGIN, END = "<!-- validate_local.py begin -->", "<!-- validate_local.py end -->"


def runs() -> list[tuple[str, calibration.Run]]:
    """``(file name, run)`` for the TP and PP medians of every committed bench file."""
    out = []
    for f in sorted(RESULTS.glob("n*_r*.json")):
        d = json.loads(f.read_text())
        c = d["config"]
        for s in ("tp", "pp"):
            v = d["strategies"][s]
            shape = FFNShape(c["d_in"], c["width"], c["layers"], c["d_out"], c["batch"],
                             c["world_size"], c["ghosts"] if s == "pp" else 0, 4)
            out.append((f.name, calibration.Run(s, shape, v["comm"]["median_s"],
                                                v["compute"]["median_s"], v["step"]["median_s"])))
    return out


def fitted() -> hardware.Profile:
    """``local-cpu`` fitted on the n = 512 runs."""
    train = [r for _, r in runs() if r.shape.width <= FIT_WIDTH and r.shape.p <= 2]
    return calibration.fit(hardware.load("local-cpu"), train, mode="sync",
                           label=f"phantom-bench runs at p = 2, n = {FIT_WIDTH}")


def markdown() -> str:
    """The error table and the median absolute error of the held-out runs."""
    hw = fitted()
    lines = ["| file | strategy | p | n | k | B | row | measured ms | modelled ms | error |",
             "|" + "---|" * 10]
    held = []
    for f, r in runs():
        t = calibration.model(r, hw, "sync").total_s
        err = t / r.step_s - 1
        use = "fit" if r.shape.width <= FIT_WIDTH else "held out"
        if use == "held out":
            held.append(abs(err))
        k = r.shape.ghosts if r.strategy == "pp" else "-"
        lines.append(f"| {f} | {r.strategy} | {r.shape.p} | {r.shape.width} | {k} "
                     f"| {r.shape.batch} | {use} "
                     f"| {r.step_s * 1e3:.2f} | {t * 1e3:.2f} | {err:+.0%} |")
    keys = (*calibration.COMM_KEYS, *calibration.COMPUTE_KEYS)
    consts = ", ".join(f"{k} = {hw[k]:.3g} {hw.constants[k].unit}" for k in keys)
    lines += ["", f"Fitted on n = {FIT_WIDTH}: {consts}. Held-out runs: {len(held)}; step time "
              f"median |error| {statistics.median(held):.0%}, max {max(held):.0%} (target: "
              "median within 25 %)."]
    return "\n".join(lines) + "\n"


def update_docs(path: Path = ROOT / "docs" / "method.md") -> None:
    """Replace the block between :data:`BEGIN` and :data:`END` in ``path`` by the table."""
    head, rest = path.read_text().split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{markdown()}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print the error table (Markdown)")
    ap.add_argument("--update-docs", action="store_true", help="write it into docs/method.md")
    args = ap.parse_args(argv)
    if args.update_docs:
        update_docs()
    if args.markdown or not args.update_docs:
        print(markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
