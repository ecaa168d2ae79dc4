"""The run folder: manifest, per-step metrics, per-epoch and per-evaluation validation,
timestamped events.

Layout and field meanings are in ``docs/interfaces.md``. Only rank 0 writes these files (the
:class:`RunLog` of other ranks is inert). Every file is appended line by line and flushed, so a
killed run loses at most the line being written; on resume, rows after the checkpoint are
dropped so the final files equal those of an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from phantom_parallel.atomic import write_json_atomic

METRIC_FIELDS = (
    "step", "epoch", "loss", "step_time_s", "compute_time_s", "comm_time_s", "comm_calls",
    "comm_bytes", "samples_per_s", "t_ns",
)
EPOCH_FIELDS = ("epoch", "step", "train_loss", "val_loss", "t_ns")
EVAL_FIELDS = ("step", "samples", "epoch", "val_loss", "train_time_s", "t_ns")
"""``evals.csv``: one row per validation (every ``--eval-every`` steps, at each epoch end and
after the last step, each step once); ``train_time_s``: sum of the measured step times up to
``step`` (s, evaluation excluded); ``t_ns``: wall clock when the evaluation finished."""
CSV_FILES = {"metrics.csv": METRIC_FIELDS, "epochs.csv": EPOCH_FIELDS, "evals.csv": EVAL_FIELDS}


def _truncate_csv(path: Path, keep: Any) -> None:
    """Keep only rows for which ``keep(row)`` is true (and the header)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
        fields = rows[0].keys() if rows else None
    if fields is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(r for r in rows if keep(r))
    os.replace(tmp, path)


class RunLog:
    """Writer of one run folder's logs (active on rank 0 only)."""

    def __init__(self, run_dir: Path, active: bool) -> None:
        self.run_dir = run_dir
        self.active = active
        self.host = socket.gethostname()
        self._files: dict[str, Any] = {}

    # -------------------------------------------------------------- lifecycle
    def open(self, resume_step: int | None, resume_epoch: int | None) -> None:
        """Open the logs for appending; on resume drop rows past the checkpoint."""
        if not self.active:
            return
        if resume_step is not None:
            _truncate_csv(self.path("metrics.csv"), lambda r: int(r["step"]) <= resume_step)
            _truncate_csv(self.path("epochs.csv"), lambda r: int(r["epoch"]) < (resume_epoch or 0))
            _truncate_csv(self.path("evals.csv"), lambda r: int(r["step"]) <= resume_step)
        else:
            for name in (*CSV_FILES, "events.jsonl"):
                self.path(name).unlink(missing_ok=True)
        for name, fields in CSV_FILES.items():
            new = not self.path(name).exists() or self.path(name).stat().st_size == 0
            f = self.path(name).open("a", newline="")
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
                f.flush()
            self._files[name] = (f, writer)
        self._files["events"] = self.path("events.jsonl").open("a")

    def close(self) -> None:
        for item in self._files.values():
            (item[0] if isinstance(item, tuple) else item).close()
        self._files.clear()

    def path(self, name: str) -> Path:
        return self.run_dir / name

    # -------------------------------------------------------------- records
    def event(self, event: str, *, epoch: int | None = None, step: int = 0, **extra: Any) -> None:
        """Append a timestamped event (``t_ns``: wall clock, ns since the Unix epoch)."""
        if not self.active:
            return
        rec = {"t_ns": time.time_ns(), "event": event, "epoch": epoch, "step": step,
               "host": self.host, **extra}
        f = self._files["events"]
        f.write(json.dumps(rec) + "\n")
        f.flush()

    def _row(self, name: str, row: dict[str, Any]) -> None:
        if not self.active:
            return
        f, writer = self._files[name]
        writer.writerow(row)
        f.flush()

    def metric(self, row: dict[str, Any]) -> None:
        self._row("metrics.csv", row)

    def epoch(self, row: dict[str, Any]) -> None:
        self._row("epochs.csv", row)

    def evaluation(self, row: dict[str, Any]) -> None:
        self._row("evals.csv", row)

    def write_json(self, name: str, obj: Any) -> None:
        if self.active:
            write_json_atomic(self.path(name), obj)
