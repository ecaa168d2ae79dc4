"""Parsers of every supported log format, by name, and format sniffing.

| format | written by |
|---|---|
| ``rocm-smi-text`` | ``rocm-smi --showpower --showenergycounter`` (stamped polls) |
| ``rocm-smi-csv`` | ``rocm-smi --showpower --showenergycounter --csv`` (stamped polls) |
| ``rocm-smi-json`` | ``rocm-smi --showpower --showenergycounter --json`` (the sampler) |
| ``amd-smi-json`` | ``amd-smi metric -p -E --json`` (the sampler; or ``--watch``) |
| ``amd-smi-csv`` | ``amd-smi metric -p -E --csv`` (stamped polls or ``--watch``), ``monitor -p --csv`` |
| ``pm-counters`` | Cray ``/sys/cray/pm_counters`` (the sampler's CSV, or ``grep . .../*`` output) |
| ``amd-smi-text`` | ``amd-smi metric -p -E`` plain text (stamped polls or ``--watch``), 6.0-6.2 |
| ``nvidia-smi-csv`` | ``nvidia-smi --query-gpu=timestamp,index,power.draw --format=csv [-lms N]`` |
| ``nvml-csv`` | the sampler's NVML source |
| ``rapl-csv`` | the sampler's RAPL source |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..records import ParseResult
from ..timestamps import parse_stamp_line
from . import amd_smi, amd_smi_text, rocm_smi
from .nvidia import parse_nvml_csv, parse_smi_csv
from .pm_counters import is_pm_line, parse_pm_counters
from .rapl import parse_rapl_csv

PARSERS: dict[str, Callable[[str | Path], ParseResult]] = {
    "rocm-smi-text": rocm_smi.parse_text,
    "rocm-smi-csv": rocm_smi.parse_csv,
    "rocm-smi-json": rocm_smi.parse_json,
    "amd-smi-json": amd_smi.parse_json,
    "amd-smi-csv": amd_smi.parse_csv,
    "amd-smi-text": amd_smi_text.parse_text,
    "nvidia-smi-csv": parse_smi_csv,
    "nvml-csv": parse_nvml_csv,
    "rapl-csv": parse_rapl_csv,
    "pm-counters": parse_pm_counters,
}
FORMATS: tuple[str, ...] = tuple(PARSERS)
AMD_TEXT = re.compile(r"^(GPU|TIMESTAMP):\s*\d+$")


class FormatError(ValueError):
    """The log's format is unknown or cannot be recognised."""


def sniff(path: str | Path, max_lines: int = 200) -> str:
    """Guess a log's format from its first data lines; raise :class:`FormatError` if unsure."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for no, line in enumerate(f, 1):
            if no > max_lines:
                break
            s = line.strip()
            try:
                stamp = parse_stamp_line(s)
            except ValueError:  # a stamp out of range: the parser reports it
                continue
            if not s or s.startswith("'CTRL'") or stamp is not None:
                continue
            if is_pm_line(s):
                return "pm-counters"
            if s.startswith("t_ns,device"):
                return "nvml-csv"
            if s.startswith("t_ns,zone"):
                return "rapl-csv"
            if s.startswith("device,"):
                return "rocm-smi-csv"
            if s.startswith('{"card') or s.startswith("{'card"):
                return "rocm-smi-json"
            if s.startswith("GPU[") or "ROCm System Management Interface" in s:
                return "rocm-smi-text"
            if AMD_TEXT.match(s):
                return "amd-smi-text"
            if s.startswith(("gpu,", "timestamp,gpu,")):
                return "amd-smi-csv"
            if s.startswith("timestamp, index") or s.startswith("index,"):
                return "nvidia-smi-csv"
            if s[0] in "[{":
                return "amd-smi-json"
    raise FormatError(f"{path}: cannot recognise the log format; give it ({', '.join(FORMATS)})")


def parse(path: str | Path, fmt: str = "auto") -> ParseResult:
    """Parse ``path`` as ``fmt`` (``auto``: sniff). Never raises on bad lines: they are issues."""
    if fmt == "auto":
        fmt = sniff(path)
    if fmt not in PARSERS:
        raise FormatError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return PARSERS[fmt](path)
