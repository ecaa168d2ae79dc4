"""Run plan of one scale: one row per job that asks for ranks and wall time, with its nodes.

The jobs are the training runs (rule ``train``), when the scale's ``lr_sweep`` is on the
learning-rate sweep runs (rule ``lr_sweep_run``), and when its ``inference`` is on the
inference jobs (rule ``infer``); the ``rule`` column tells them apart. Training and sweep runs
ask for their first attempt's wall time (``training.runtime_min``), inference jobs for
``inference.runtime_min`` (default the same), each at most ``execution.max_runtime_min``.
The requested node-hours (nodes * runtime_min / 60, summed) is an upper bound of the
allocation the study asks the scheduler for (retried training attempts aside); docs/frontier.md
quotes it from this file (`snakemake --profile frontier plan`), never from memory.
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
    infer: Sequence[dict[str, Any]] = (),
    infer_runtime_min: int | None = None,
) -> list[dict]:
    """One row per job: the training runs ``runs``, then the sweep runs ``sweep``, then the
    inference jobs ``infer`` (each a dict with run, strategy, p, n, k, seed); ``runtime_min``:
    minutes a training or sweep run asks for (its first attempt), ``infer_runtime_min`` an
    inference job (``None``: the same)."""
    jobs = [*(("train", r, runtime_min) for r in runs),
            *(("lr_sweep_run", r, runtime_min) for r in sweep),
            *(("infer", r, infer_runtime_min or runtime_min) for r in infer)]
    rows = []
    for rule, r, minutes in jobs:
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
                "runtime_min": minutes,
                "requested_node_hours": nodes * minutes / 60,
            }
        )
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(summary(rows))


def summary(rows: list[dict]) -> str:
    """``N jobs (T training runs, S learning-rate sweep runs, I inference jobs), at most H
    node-hours requested``."""
    total = sum(r["requested_node_hours"] for r in rows)
    kinds = [(sum(r["rule"] == rule for r in rows), what) for rule, what in JOB_KINDS]
    parts = ", ".join(f"{count} {what}" for count, what in kinds if count)
    return f"{len(rows)} jobs ({parts}), at most {total:.1f} node-hours requested"


JOB_KINDS = (("train", "training runs"), ("lr_sweep_run", "learning-rate sweep runs"),
             ("infer", "inference jobs"))
"""The rules of :func:`plan`'s rows and what the summary calls them."""


if "snakemake" in globals():
    smk = globals()["snakemake"]
    rows = plan(smk.params.runs, smk.params.execution, smk.params.runtime_min, smk.params.sweep,
                smk.params.infer, smk.params.infer_runtime_min)
    write(rows, Path(smk.output[0]))
