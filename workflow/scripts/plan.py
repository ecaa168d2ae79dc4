"""Run plan of one scale: one row per run with ranks, nodes and requested time.

The runs are the training runs (rule ``train``) and, when the scale's ``lr_sweep`` is on, the
learning-rate sweep runs (rule ``lr_sweep_run``), which ask for the same wall time; the
``rule`` column tells them apart. The requested node-hours (nodes * runtime_min / 60, summed)
is an upper bound of the allocation the study asks the scheduler for; docs/frontier.md quotes
it from this file (`snakemake --profile frontier plan`), never from memory.
"""


import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plan(
    runs: list[dict[str, Any]],
    execution: dict[str, Any],
    runtime_min: int,
    sweep: Sequence[dict[str, Any]] = (),
) -> list[dict]:
    """One row per run: the training runs ``runs``, then the sweep runs ``sweep`` (each a
    dict with run, strategy, p, n, k, seed); ``runtime_min``: minutes each job asks for."""
    jobs = [("train", r) for r in runs] + [("lr_sweep_run", r) for r in sweep]
    rows = []
    for rule, r in jobs:
        nodes = math.ceil(r["p"] / execution["ranks_per_node"])
        rows.append(
            {
                "run": r["run"],
                "rule": rule,
                "strategy": r["strategy"],
                "p": r["p"],
                "n": r["n"],
                "k": r["k"],
                "seed": r["seed"],
                "nodes": nodes,
                "devices": r["p"] * max(execution["gpus_per_rank"], 0),
                "runtime_min": runtime_min,
                "requested_node_hours": nodes * runtime_min / 60,
            }
        )
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    total = sum(r["requested_node_hours"] for r in rows)
    swept = sum(r["rule"] == "lr_sweep_run" for r in rows)
    also = f" (of them {swept} learning-rate sweep runs)" if swept else ""
    print(f"{len(rows)} runs{also}, at most {total:.1f} node-hours requested")


if "snakemake" in globals():
    smk = globals()["snakemake"]
    rows = plan(smk.params.runs, smk.params.execution, smk.params.runtime_min, smk.params.sweep)
    write(rows, Path(smk.output[0]))
