"""The run folder: manifest, per-step metrics, per-epoch and per-evaluation validation,
timestamped events.

Layout and field meanings are in ``docs/interfaces.md``. Only rank 0 writes these files (the
:class:`RunLog` of other ranks is inert). Every file is appended line by line and flushed, so a
killed run loses at most the line being written; on resume, rows after the checkpoint (and a
last line cut off by the kill) are dropped so the final files equal those of an uninterrupted
run, after every kept line was checked (:func:`read_rows`) and before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from phantom_parallel.atomic import write_json_atomic, write_text_atomic

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


# What a resume keeps of each file: the rows whose ``step`` is at most the checkpoint's step,
# or whose ``epoch`` is below its epoch.
_KEEP = {"metrics.csv": "step", "epochs.csv": "epoch", "evals.csv": "step"}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of one of the run's CSV files (none: ``[], []``), checked: every row
    has one number (or nothing) per column, ``step``/``epoch`` an integer. A last line without
    its line end (cut off by a kill) is dropped.

    Raises:
        ValueError: a malformed line, naming the file and the line number.
    """
    if not path.exists():
        return [], []
    with path.open(newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    if not lines:
        return [], []
    header = next(csv.reader(lines[:1]))
    rows = []
    for n, line in enumerate(lines[1:], 2):
        values = next(csv.reader([line]), [])
        row = dict(zip(header, values, strict=False))
        if (len(values) != len(header) or not all(v == "" or _number(v) for v in values)
                or not all(row[k].lstrip("-").isdigit() for k in ("step", "epoch") if k in row)):
            raise ValueError(f"{path} line {n}: {line.strip()!r} is not a row of numbers under "
                             "the header; repair or remove that line")
        rows.append(row)
    return header, rows


class RunLog:
    """Writer of one run folder's logs (active on rank 0 only)."""

    def __init__(self, run_dir: Path, active: bool) -> None:
        self.run_dir = run_dir
        self.active = active
        self.host = socket.gethostname()
        self._files: dict[str, Any] = {}
        self._kept: dict[str, tuple[list[str], list[dict[str, str]]]] | None = None

    # -------------------------------------------------------------- lifecycle
    def check(self, resume_step: int, resume_epoch: int) -> None:
        """Read and check the logs a resume from ``resume_step``/``resume_epoch`` keeps,
        writing nothing; :meth:`open` then writes back what is kept.

        ``metrics.csv`` without the rows of some steps up to the checkpoint's (lines not yet on
        disk when a node failed: the checkpoint is synced, the logs only flushed) is warned
        about on stderr, naming the file and steps, and the run goes on without them.

        Raises:
            ValueError: one line naming the file: a malformed line (:func:`read_rows`), a
                missing column, or a step whose row is there twice.
        """
        if not self.active:
            return
        self._kept = {}
        for name, column in _KEEP.items():
            header, rows = read_rows(self.path(name))
            missing = [f for f in CSV_FILES[name] if header and f not in header]
            if missing:
                raise ValueError(f"{self.path(name)}: missing column{'s' * (len(missing) > 1)} "
                                 f"{', '.join(missing)}; restore the file or use another --run-dir")
            limit = resume_step if column == "step" else resume_epoch - 1
            if header:
                self._kept[name] = (header, [r for r in rows if int(r[column]) <= limit])
        steps = [int(r["step"]) for r in self._kept.get("metrics.csv", ([], []))[1]]
        if len(set(steps)) != len(steps):
            raise ValueError(f"{self.path('metrics.csv')}: a step's row is there twice; restore "
                             "the file or use another --run-dir")
        missing = sorted(set(range(1, resume_step + 1)) - set(steps))
        if missing:
            span = (f"step {missing[0]}" if len(missing) == 1 else
                    f"{len(missing)} steps from {missing[0]} to {missing[-1]}")
            print(f"phantom-train: warning: {self.path('metrics.csv')}: no row for {span} "
                  f"of the {resume_step} the checkpoint has; the run goes on without them",
                  file=sys.stderr)

    def open(self, resume_step: int | None, resume_epoch: int | None) -> None:
        """Open the logs for appending; on resume drop rows past the checkpoint (checked by
        :meth:`check` first, which this calls if it was not)."""
        if not self.active:
            return
        if resume_step is not None:
            if self._kept is None:
                self.check(resume_step, resume_epoch or 0)
            for name, (header, rows) in (self._kept or {}).items():
                text = io.StringIO(newline="")
                writer = csv.DictWriter(text, fieldnames=header)
                writer.writeheader()
                writer.writerows(rows)
                write_text_atomic(self.path(name), text.getvalue())
            events = self.path("events.jsonl")
            old = events.read_text(errors="replace") if events.exists() else ""
            if old and not old.endswith("\n"):  # a line cut off by the kill: the resume's
                write_text_atomic(events, old[:old.rfind("\n") + 1])  # events start anew
        else:
            for name in (*CSV_FILES, "events.jsonl"):
                self.path(name).unlink(missing_ok=True)
        for name, fields in CSV_FILES.items():
            new = not self.path(name).exists() or self.path(name).stat().st_size == 0
            f = self.path(name).open("a", newline="")
            kept = (self._kept or {}).get(name) if resume_step is not None else None
            writer = csv.DictWriter(f, fieldnames=kept[0] if kept else fields)  # its columns
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
