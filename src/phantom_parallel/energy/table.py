"""Writing the energy table: ``energy.json`` and the tidy ``energy.csv``.

CSV scopes: ``device`` (one row per device), ``node`` (devices only: the counted GPU
packages or accelerators of a node), ``node_whole`` (whole node from Cray pm_counters:
CPU, memory, accelerators and the rest), ``epoch`` and ``total`` (devices only).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

CSV_COLUMNS = (
    "scope",
    "host",
    "device",
    "role",
    "counted",
    "method",
    "source",
    "energy_j",
    "counter_j",
    "integration_j",
    "rel_diff",
    "mean_power_w",
    "window_s",
    "coverage",
    "max_gap_s",
    "samples",
    "polls_expected",
    "polls_read",
    "polls_lost",
    "flagged",
)


def write_report(
    report: dict[str, Any], out_dir: str | Path, stem: str = "energy"
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and the tidy ``<stem>.csv`` (one row per device, node, epoch, total).

    Both are written to temporary files first and then renamed over any previous pair, so a
    failure leaves the previous files whole and a reader never sees half a file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, cpath = out / f"{stem}.json", out / f"{stem}.csv"
    tmp_j, tmp_c = (p.with_name(f".{p.name}.tmp-{os.getpid()}") for p in (jpath, cpath))
    try:
        tmp_j.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        _write_csv(report, tmp_c)
        os.replace(tmp_c, cpath)
        os.replace(tmp_j, jpath)
    finally:
        for t in (tmp_j, tmp_c):
            t.unlink(missing_ok=True)
    return jpath, cpath


def _write_csv(report: dict[str, Any], cpath: Path) -> None:
    """The tidy CSV of ``report`` at ``cpath``."""
    method, source = report["method"], report["source"]
    rows: list[dict[str, Any]] = []
    for d in report["devices"]:
        rows.append(
            {
                "scope": "device",
                "window_s": report["window_s"],
                **{k: d.get(k) for k in CSV_COLUMNS if k in d},
            }
        )
    for host, e in report["per_node_j"].items():
        rows.append(
            {"scope": "node", "host": host, "energy_j": e, "method": method, "source": source}
        )
    for host, e in (report.get("per_node_whole_j") or {}).items():
        rows.append(
            {
                "scope": "node_whole",
                "host": host,
                "energy_j": e,
                "method": "counter",
                "source": "pm_counters",
            }
        )
    for ep, e in report["per_epoch_j"].items():
        rows.append(
            {
                "scope": "epoch",
                "device": f"epoch {ep}",
                "energy_j": e,
                "method": method,
                "source": source,
            }
        )
    rows.append(
        {
            "scope": "total",
            "energy_j": report["total_j"],
            "method": method,
            "source": source,
            "mean_power_w": report["mean_power_w"],
            "window_s": report["window_s"],
            "coverage": report["coverage"],
            "max_gap_s": report["max_gap_s"],
            "rel_diff": report["counter_vs_integration_rel_diff"],
        }
    )
    with open(cpath, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in CSV_COLUMNS})
