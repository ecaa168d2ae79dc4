"""Live power sources: how each one is probed and polled on a machine.

A source turns one poll into a chunk of text appended to the raw log:

- command sources (``rocm-smi``, ``amd-smi``, ``nvidia-smi``) write a stamp line
  ``#@ t_ns=<mid> start_ns=<s> end_ns=<e> rc=<rc>`` followed by the tool's own stdout and
  then its stderr, untouched (the tools have no ns stamps of their own);
- ``nvml`` writes CSV rows ``t_ns,device,energy_mj,power_mw`` (raw NVML units);
- ``rapl`` writes CSV rows ``t_ns,zone,name,energy_uj,max_energy_range_uj`` (raw sysfs);
- ``pm_counters`` writes CSV rows ``t_ns,counter,content`` (Cray EX, :mod:`.cray`).

``t_ns`` of a command poll is the midpoint of the call (the tools read the sensors somewhere
inside a ~0.1-0.7 s call).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .source_types import Source, SourceError

#: Order in which ``auto`` tries the sources (``pm_counters`` only where its folder exists).
AUTO_ORDER: tuple[str, ...] = ("pm_counters", "rocm-smi", "amd-smi", "nvml", "nvidia-smi", "rapl")
#: Every source name the sampler accepts besides ``auto``.
SOURCES: tuple[str, ...] = ("none", *AUTO_ORDER)
#: The choices of a ``--power-source`` flag (the trainer's and ``phantom-energy sample``'s).
POWER_SOURCES: tuple[str, ...] = ("auto", *SOURCES)

#: Command line and log format of each command source.
COMMANDS: dict[str, tuple[list[str], str]] = {
    "rocm-smi": (["rocm-smi", "--showpower", "--showenergycounter", "--json"], "rocm-smi-json"),
    "amd-smi": (["amd-smi", "metric", "--power", "--energy", "--json"], "amd-smi-json"),
    "nvidia-smi": (
        ["nvidia-smi", "--query-gpu=timestamp,index,power.draw", "--format=csv"],
        "nvidia-smi-csv",
    ),
}
NVML_HEADER = "t_ns,device,energy_mj,power_mw\n"
RAPL_HEADER = "t_ns,zone,name,energy_uj,max_energy_range_uj\n"
DEFAULT_POWERCAP = "/sys/class/powercap"


class CommandSource:
    """A CLI tool called once per poll."""

    header = ""

    def __init__(self, name: str, timeout_s: float = 10.0) -> None:
        if name not in COMMANDS:
            raise SourceError(f"unknown command source {name!r}")
        argv, fmt = COMMANDS[name]
        exe = shutil.which(argv[0])
        if exe is None:
            raise SourceError(f"{argv[0]} not found on PATH")
        self.name, self.fmt, self.argv, self.timeout_s = name, fmt, [exe, *argv[1:]], timeout_s

    def poll(self) -> str:
        start = time.time_ns()
        try:
            proc = subprocess.run(
                self.argv, capture_output=True, text=True, errors="replace", timeout=self.timeout_s
            )
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out = 124, ""
            err = f"ERROR: timeout after {exc.timeout} s\n"
        end = time.time_ns()
        stamp = f"#@ t_ns={(start + end) // 2} start_ns={start} end_ns={end} rc={rc}\n"
        if out and not out.endswith("\n"):
            out += "\n"
        if err and not err.endswith("\n"):
            err += "\n"
        return stamp + out + err

    def describe(self) -> str:
        return " ".join(self.argv)

    def close(self) -> None:
        return None


class NvmlSource:
    """NVML through ``nvidia-ml-py`` (``import pynvml``); ``nvml`` may be a fake module."""

    name, fmt, header = "nvml", "nvml-csv", NVML_HEADER

    def __init__(self, nvml: Any | None = None) -> None:
        if nvml is None:
            try:
                import pynvml as nvml  # type: ignore[import-not-found,no-redef]
            except ImportError as exc:
                raise SourceError("pynvml (nvidia-ml-py) is not installed") from exc
        self.nvml = nvml
        try:
            nvml.nvmlInit()
            n = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            raise SourceError(f"NVML init failed: {exc}") from exc
        if n == 0:
            raise SourceError("NVML sees no GPU")
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]

    def _read(self, fn: Callable[[Any], int], h: Any) -> str:
        try:
            return str(int(fn(h)))
        except Exception:  # NVMLError_NotSupported and friends: missing value
            return ""

    def poll(self) -> str:
        rows = []
        for i, h in enumerate(self.handles):
            t = time.time_ns()
            e = self._read(self.nvml.nvmlDeviceGetTotalEnergyConsumption, h)
            p = self._read(self.nvml.nvmlDeviceGetPowerUsage, h)
            rows.append(f"{t},{i},{e},{p}\n")
        return "".join(rows)

    def describe(self) -> str:
        return "pynvml nvmlDeviceGetTotalEnergyConsumption (mJ), nvmlDeviceGetPowerUsage (mW)"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()


def rapl_zones(root: str | os.PathLike[str] = DEFAULT_POWERCAP) -> list[Path]:
    """RAPL zones to count: ``intel-rapl:<p>`` packages and their ``dram`` subzones.

    Other subzones (core, uncore) are part of the package; ``psys`` and ``intel-rapl-mmio``
    duplicate the packages and are skipped.
    """
    out = []
    for zone in sorted(Path(root).glob("intel-rapl:*")):
        name_file = zone / "name"
        if not (zone / "energy_uj").exists() or not name_file.exists():
            continue
        name = name_file.read_text().strip()
        parts = zone.name.split(":")
        if name == "psys":
            continue
        if len(parts) == 2 or (len(parts) == 3 and name == "dram"):
            out.append(zone)
    return out


class RaplSource:
    """Linux powercap RAPL counters under a configurable sysfs root."""

    name, fmt, header = "rapl", "rapl-csv", RAPL_HEADER

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_POWERCAP) -> None:
        self.root = Path(root)
        self.zones = rapl_zones(self.root)
        if not self.zones:
            raise SourceError(f"no RAPL zones under {self.root}")
        self.meta = []
        for z in self.zones:
            try:
                (z / "energy_uj").read_text()
            except OSError as exc:
                raise SourceError(f"cannot read {z / 'energy_uj'}: {exc}") from exc
            mx = z / "max_energy_range_uj"
            rng = mx.read_text().strip() if mx.exists() else ""
            self.meta.append((z.name, (z / "name").read_text().strip(), rng))

    def poll(self) -> str:
        rows = []
        for z, (zone, name, rng) in zip(self.zones, self.meta, strict=True):
            t = time.time_ns()
            try:
                e = (z / "energy_uj").read_text().strip()
            except OSError:
                e = ""
            rows.append(f"{t},{zone},{name},{e},{rng}\n")
        return "".join(rows)

    def describe(self) -> str:
        return f"{self.root}/intel-rapl:*/energy_uj"

    def close(self) -> None:
        return None


def open_source(name: str, **options: Any) -> Source:
    """Open a source by name; raise :class:`SourceError` if it does not work here.

    ``options``: ``powercap_root`` (RAPL sysfs root), ``pm_counters_root`` (Cray pm_counters
    folder), ``nvml`` (a pynvml-like module).
    """
    if name in COMMANDS:
        src: Source = CommandSource(name)
        text = src.poll()
        stamp, *body = text.splitlines()
        # rocm-smi 5.x exits 2 when one read fails but still prints the others
        data = [b for b in body if b.strip() and not b.startswith(("ERROR", "WARNING"))]
        if " rc=0" not in stamp and not data:
            raise SourceError(f"{src.describe()} failed: {body[:2]}")
        return src
    if name == "nvml":
        return NvmlSource(options.get("nvml"))
    if name == "rapl":
        return RaplSource(options.get("powercap_root") or DEFAULT_POWERCAP)
    if name == "pm_counters":
        from .cray import PmCountersSource

        return PmCountersSource(options.get("pm_counters_root"))
    raise SourceError(f"unknown source {name!r}; choose from {', '.join(SOURCES)}")


def resolve(name: str, **options: Any) -> tuple[str, list[str]]:
    """Resolve ``auto`` to the first working source (``none`` if none works).

    Returns the resolved name and the reasons the skipped sources failed. An explicitly
    named source that does not work raises :class:`SourceError`.
    """
    if name == "none":
        return "none", []
    if name != "auto":
        open_source(name, **options).close()
        return name, []
    reasons = []
    for cand in AUTO_ORDER:
        try:
            open_source(cand, **options).close()
            return cand, reasons
        except SourceError as exc:
            reasons.append(f"{cand}: {exc}")
    return "none", reasons


def source_error(name: str, flag: str = "--power-source") -> str | None:
    """What is wrong with the power source ``name`` given as ``flag`` on this machine, in one
    line (None: nothing): a named sensor that does not work here (``auto`` falls back to
    none, ``none`` needs nothing)."""
    if name in ("auto", "none"):
        return None
    try:
        resolve(name)
    except SourceError as err:
        return f"{flag} {name}: {err} (use auto or none)"
    return None
