"""``phantom-costs``: the closed-form counts of :func:`phantom_parallel.costs.predict` as CSV/JSON,
one row per grid point; ``phantom-costs project ...`` is the modelled projection of time and
energy (:mod:`phantom_parallel.projection`), the only time model the CLI has.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any

from phantom_parallel import cli
from phantom_parallel.constants import DTYPE_BYTES
from phantom_parallel.costs import (
    _ACT_SAVES_INPUT,
    OPTIMIZER_STATES,
    STRATEGIES,
    FFNShape,
    predict,
)


def _table(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``phantom-costs``."""
    ap = cli.parser(
        "phantom-costs",
        "Closed-form per-rank, per-step costs (matmul FLOPs, collective calls, "
        "payload/wire bytes, parameters, memory) of serial / TP / PP FFN training. Lists give a "
        "grid (cartesian product); invalid grid points (n % p != 0, k > m) are skipped with a "
        "note on stderr; sizes below 1 (layers below 0) are refused. Time and energy: `phantom-costs project --hardware NAME ...`.",
    )
    ap.add_argument("--strategy", nargs="+", default=["tp", "pp"], choices=STRATEGIES)
    ap.add_argument("--width", nargs="+", type=int, default=[1024], help="hidden width n")
    ap.add_argument("--layers", nargs="+", type=int, default=[4], help="hidden n x n layers L")
    ap.add_argument("--ranks", "--p", dest="p", nargs="+", type=int, default=[1, 2, 4, 8],
                    help="ranks p")
    ap.add_argument("--ghosts", nargs="+", type=int, default=[32], help="PP ghosts per rank k")
    ap.add_argument("--batch-size", "--batch", dest="batch", nargs="+", type=int, default=[64],
                    help="samples per step B")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--d-out", type=int, default=8)
    ap.add_argument("--dtype", choices=sorted(DTYPE_BYTES), default="float32")
    ap.add_argument("--optimizer", choices=sorted(OPTIMIZER_STATES), default="adam")
    ap.add_argument("--activation", choices=sorted(_ACT_SAVES_INPUT), default="tanh")
    ap.add_argument("--strict", action="store_true", help="fail on invalid grid points")
    ap.add_argument("--format", choices=("csv", "json"), default="csv")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-costs`` entry point: print one row per (strategy, grid point);
    ``phantom-costs project ...`` runs :func:`phantom_parallel.projection.main`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["project"]:
        from phantom_parallel.projection import main as project_main

        return project_main(argv[1:])
    args = build_parser().parse_args(argv)
    msg = (cli.minimum_error({"--width": min(args.width), "--ranks": min(args.p),
                              "--ghosts": min(args.ghosts), "--batch-size": min(args.batch),
                              "--d-in": args.d_in, "--d-out": args.d_out}, 1)
           or cli.minimum_error({"--layers": min(args.layers)}, 0))
    if msg:  # a size that no grid point can have, not an invalid grid point
        print(f"phantom-costs: error: {msg}", file=sys.stderr)
        return 2
    elem = DTYPE_BYTES[args.dtype]
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for strategy, width, layers, batch, p, k in itertools.product(
        args.strategy, args.width, args.layers, args.batch, args.p, args.ghosts
    ):
        if strategy == "serial":
            p = 1
        if strategy != "pp" or p == 1:
            k = 0
        key = (strategy, width, layers, batch, p, k)
        if key in seen:
            continue
        seen.add(key)
        try:
            shape = FFNShape(args.d_in, width, layers, args.d_out, batch, p, k, elem)
            cost = predict(strategy, shape, optimizer=args.optimizer, activation=args.activation)
        except ValueError as exc:
            if args.strict:
                print(f"phantom-costs: error: --strict: {cli.layout_error(exc)}", file=sys.stderr)
                return 2
            print(f"phantom-costs: skipping {strategy}: {cli.layout_error(exc)}", file=sys.stderr)
            continue
        row = cost.row()
        rows.append(row)
    if not rows:
        print("phantom-costs: error: no valid grid point (every one was skipped, above)",
              file=sys.stderr)
        return 2
    sys.stdout.write(_table(rows, args.format))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
