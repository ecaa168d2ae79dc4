"""Live source ``pm_counters``: HPE Cray EX ``/sys/cray/pm_counters/`` (node, CPU, memory and
per-accelerator energy in J and power in W, each with the controller's µs time stamp).

Each poll writes one CSV row per file, ``t_ns,counter,content`` (``content`` = the file's
text, or ``!<error>``; ``!missing`` for an expected file that is absent), read in this order:
``freshness``, the counters, ``freshness`` again; when the two ``freshness`` values differ the
counters changed under the read and are read once more. ``generation`` and ``startup`` are
written every poll (a change means the counters restarted). Parsed by
:mod:`.formats.pm_counters`. The root is injectable (tests never read the real ``/sys``).
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

from .source_types import SourceError

DEFAULT_PM_COUNTERS = "/sys/cray/pm_counters"
PM_HEADER = "t_ns,counter,content\n"
NODE_FILES = ("energy", "power", "cpu_energy", "cpu_power", "memory_energy", "memory_power")


def pm_files(root: Path) -> list[str]:
    """Counter files to read: the node, CPU and memory files present, and
    ``accel<k>_energy``/``accel<k>_power`` for every k up to the highest present."""
    present = {p.name for p in root.iterdir()} if root.is_dir() else set()
    accels = [
        int(n[5 : n.index("_")])
        for n in present
        if n.startswith("accel")
        and "_" in n
        and n[5 : n.index("_")].isdigit()
        and n.endswith(("_energy", "_power"))
    ]
    files = [f for f in NODE_FILES if f in present]
    for k in range(max(accels, default=-1) + 1):
        files += [f"accel{k}_energy", f"accel{k}_power"]
    return files


class PmCountersSource:
    """The pm_counters files under ``root`` (default :data:`DEFAULT_PM_COUNTERS`)."""

    name, fmt, header = "pm_counters", "pm-counters", PM_HEADER

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root or DEFAULT_PM_COUNTERS)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: no such directory (not a Cray EX node)")
        self.files = pm_files(self.root)
        if not self.files:
            raise SourceError(f"{self.root}: no energy or power counter files")
        missing = [f for f in self.files if not (self.root / f).exists()]
        self.warnings = [f"{self.root / f}: missing" for f in missing]

    def _read(self, name: str) -> str:
        try:
            return (self.root / name).read_text().strip().replace("\n", " ")
        except FileNotFoundError:
            return "!missing"
        except OSError as exc:
            return f"!{type(exc).__name__}: {exc.strerror or exc}"

    def poll(self) -> str:
        t = time.time_ns()
        for _ in range(2):
            before = self._read("freshness")
            values = [(f, self._read(f)) for f in self.files]
            after = self._read("freshness")
            if before == after:
                break
        rows = [("freshness", after), ("generation", self._read("generation"))]
        rows += [("startup", self._read("startup")), *values]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for name, content in rows:
            w.writerow([t, name, content])
        return buf.getvalue()

    def describe(self) -> str:
        return f"{self.root}/{{freshness,generation,startup,{','.join(self.files)}}}"

    def close(self) -> None:
        return None
