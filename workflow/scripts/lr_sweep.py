"""The learning-rate sweep's table and its choice per model family (issue 11, item 6).

The sweep trains one configuration per model family (``lr_sweep.families``) at each learning
rate of ``lr_sweep.values`` for ``lr_sweep.steps`` optimizer steps and each seed of
``lr_sweep.seeds`` (rule ``lr_sweep_run``). The chosen learning rate of a family is the one with
the lowest mean final *validation* loss over those seeds (ties: the smaller learning rate); the
test split is never used for the choice.

* ``sweep_table(specs, summaries)``: one row per sweep run (family, strategy, p, n, k, lr, seed,
  steps, val_loss, mean_val_loss, chosen, run); written by ``derive.py`` as
  ``results/<scale>/tables/lr_sweep.csv`` (rule ``table_lr_sweep``).
* ``chosen_lr(table, family)``: the chosen learning rate of one family, read back from that
  CSV.
* ``run_lr(table, family, width, scaling)``: the learning rate of one run of the family. With
  ``lr_sweep.width_scaling: inverse`` a run of hidden width ``n`` takes
  ``chosen * n_swept / n`` (Adam's best learning rate falls about as 1/width in the standard
  parameterisation, the muP rule for hidden matrices; docs/method.md, "Learning rates"), so a
  width sweep is not judged at the learning rate of another width; ``none`` (default) gives
  every width the chosen value.
  Every training run of the scale takes its ``--lr`` from it at run time
  (``python lr_sweep.py TABLE FAMILY [--width N --width-scaling inverse]``, printed on stdout),
  so the value flows from the sweep's output into the runs and is never typed into the config.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

WIDTH_SCALINGS = ("none", "inverse")
COLUMNS = ["family", "strategy", "p", "n", "k", "lr", "seed", "steps", "val_loss",
           "mean_val_loss", "chosen", "run"]


def sweep_table(specs: dict[str, dict[str, Any]], summaries: list[Path]) -> pd.DataFrame:
    """Rows of ``lr_sweep.csv`` from the sweep runs' ``summary.json`` files.

    Args:
        specs: sweep run name -> {family, strategy, p, n, k, lr, seed} (runs.smk LR_SWEEP).
        summaries: ``.../<run name>/summary.json`` of every sweep run.

    Returns:
        One row per run; ``mean_val_loss`` is the mean final validation loss (MSE, unitless) of
        its (family, lr) over seeds, ``chosen`` marks every row of the chosen lr of its family.

    Raises:
        ValueError: a run has a non-finite validation loss for every lr of its family.
    """
    import pandas as pd

    rows = []
    for path in summaries:
        path = Path(path)
        spec = specs[path.parent.name]
        summary = json.loads(path.read_text())
        rows.append({**{c: spec[c] for c in ("family", "strategy", "p", "n", "k", "lr", "seed")},
                     "steps": summary.get("steps"),
                     "val_loss": float(summary.get("final_val_loss", math.nan)),
                     "run": path.parent.name})
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("mean_val_loss", "chosen")])
    # a diverged run (nan/inf) never wins: its mean is +inf
    finite = df["val_loss"].where(df["val_loss"].map(math.isfinite), math.inf)
    df["mean_val_loss"] = finite.groupby([df["family"], df["lr"]]).transform("mean")
    df["chosen"] = False
    for family, g in df.groupby("family"):
        means = g.groupby("lr")["mean_val_loss"].first().sort_index()
        if not means.map(math.isfinite).any():
            raise ValueError(f"lr sweep: every learning rate of family {family!r} diverged")
        best = means.idxmin()  # sorted by lr: ties go to the smaller learning rate
        df.loc[(df["family"] == family) & (df["lr"] == best), "chosen"] = True
    return df[COLUMNS].sort_values(["family", "lr", "seed"]).reset_index(drop=True)


def _family_rows(table: Path | str, family: str) -> list[dict[str, str]]:
    """The rows of ``family`` in ``lr_sweep.csv`` (csv module: every training job reads the
    table at start, so no pandas import)."""
    with open(table, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["family"] == family]


def _one(values: set[Any], what: str, family: str) -> Any:
    if len(values) != 1:
        raise ValueError(f"{len(values)} {what} for family {family!r} (expected 1)")
    return values.pop()


def _chosen(rows: list[dict[str, str]], family: str) -> float:
    return _one({float(r["lr"]) for r in rows if r["chosen"] == "True"},
                "chosen learning rates", family)


def _swept_width(rows: list[dict[str, str]], family: str) -> int:
    return _one({int(r["n"]) for r in rows}, "swept widths", family)


def chosen_lr(table: Path | str, family: str) -> float:
    """The chosen learning rate of ``family`` in ``lr_sweep.csv``.

    Raises:
        ValueError: the table has no chosen row for ``family`` or more than one chosen lr.
    """
    return _chosen(_family_rows(table, family), family)


def swept_width(table: Path | str, family: str) -> int:
    """The hidden width ``n`` of ``family``'s swept configuration in ``lr_sweep.csv``."""
    return _swept_width(_family_rows(table, family), family)


def run_lr(table: Path | str, family: str, width: int | None = None,
           scaling: str = "none") -> float:
    """Learning rate of a run of ``family`` with hidden width ``width`` (the table read once).

    ``scaling`` ``none``: the chosen lr; ``inverse``: chosen lr x swept width / ``width``.

    Raises:
        ValueError: unknown ``scaling``, ``inverse`` without a positive ``width``, or the
            table problems of :func:`chosen_lr` / :func:`swept_width`.
    """
    if scaling not in WIDTH_SCALINGS:
        raise ValueError(f"width scaling {scaling!r} is not one of {list(WIDTH_SCALINGS)}")
    if scaling == "inverse" and (width is None or width < 1):
        raise ValueError(f"width scaling 'inverse' needs --width >= 1, got {width!r}")
    rows = _family_rows(table, family)
    lr = _chosen(rows, family)
    return lr if scaling == "none" else lr * _swept_width(rows, family) / width


def main(argv: list[str]) -> int:
    """``python lr_sweep.py TABLE FAMILY [--width N] [--width-scaling none|inverse]``: print
    the run's learning rate (repr, exact)."""
    parser = argparse.ArgumentParser(prog="lr_sweep.py")
    parser.add_argument("table")
    parser.add_argument("family")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--width-scaling", choices=WIDTH_SCALINGS, default="none")
    args = parser.parse_args(argv)
    try:
        print(repr(run_lr(Path(args.table), args.family, args.width, args.width_scaling)))
    except (OSError, ValueError, KeyError) as exc:
        print(f"lr_sweep: error: {args.table}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
