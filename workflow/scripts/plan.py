"""Run plan of one scale: one row per training run with ranks, nodes and requested time.

The requested node-hours (nodes * runtime_min / 60, summed) is an upper bound of the
allocation the study asks the scheduler for; docs/frontier.md quotes it from this file
(`snakemake --profile frontier plan`), never from memory.
"""


import csv
import math
from pathlib import Path
from typing import Any


def plan(runs: list[dict[str, Any]], execution: dict[str, Any], runtime_min: int) -> list[dict]:
    rows = []
    for r in runs:
        nodes = math.ceil(r["p"] / execution["ranks_per_node"])
        rows.append(
            {
                "run": r["run"],
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
    print(f"{len(rows)} runs, at most {total:.1f} node-hours requested")


if "snakemake" in globals():
    smk = globals()["snakemake"]
    write(plan(smk.params.runs, smk.params.execution, smk.params.runtime_min), Path(smk.output[0]))
