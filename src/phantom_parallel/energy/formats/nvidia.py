"""NVIDIA logs: ``nvidia-smi --query-gpu=timestamp,index,power.draw,... --format=csv [-lms N]``
and the sampler's NVML CSV (``t_ns,device,energy_mj,power_mw``).

nvidia-smi columns are found by name (the header is stripped of spaces and units, so
``" power.draw [W]"`` is ``power.draw``); the header is needed (``noheader`` logs are rejected
line by line). The ``timestamp`` column is local time without a zone: it is used only when the
poll has no stamp line, in the zone given by ``tz`` (default: this machine's).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timezone
from pathlib import Path

from ..records import ParseResult, Sample
from ..timestamps import OUT_OF_RANGE, check_ns, digits_ns
from ..units import NS_PER_S, NVML_ENERGY_J, NVML_POWER_W, parse_number
from .common import (
    missing_parts,
    note_other,
    read_lines,
    record_poll,
    records_from_rows,
    split_polls,
)

#: nvidia-smi power columns in order of preference.
POWER_COLUMNS = ("power.draw", "power.draw.average", "power.draw.instant")
SMI_TIME = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


def smi_time_to_ns(text: str, tz: timezone | None = None) -> int:
    """``2025/03/04 10:15:02.114`` (local time) to ns since the epoch."""
    m = SMI_TIME.match(text.strip())
    if not m:
        raise ValueError(f"not an nvidia-smi timestamp: {text!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    dt = dt.replace(tzinfo=tz) if tz else dt.astimezone()
    return check_ns(int(dt.timestamp()) * NS_PER_S + int((frac or "0").ljust(9, "0")))


def _name(col: str) -> str:
    return re.sub(r"\s*\[.*\]$", "", col.strip())


def parse_smi_csv(path: str | Path, tz: timezone | None = None) -> ParseResult:
    """Parse nvidia-smi ``--query-gpu`` CSV (one row per GPU per poll, repeated headers)."""
    result = ParseResult(str(path), "nvidia-smi-csv")
    header: list[str] | None = None
    unstamped: list[tuple[int, int, str, str, str]] = []
    for poll in split_polls(read_lines(path, result), result):
        got = False
        first = len(result.issues)
        status: dict[str, str] = {}
        for no, text in poll.lines:
            if not text.strip():
                continue
            row = [f.strip() for f in next(csv.reader([text]))]
            names = [_name(c) for c in row]
            if "index" in names and (
                "timestamp" in names or any(p in names for p in POWER_COLUMNS)
            ):
                header = names
                continue
            if (
                header is None
                or len(row) != len(header)
                or not row[header.index("index")].isdigit()
            ):
                note_other(result, no, text)
                continue
            f = dict(zip(header, row, strict=True))
            try:
                t = poll.t_ns if poll.t_ns is not None else smi_time_to_ns(f["timestamp"], tz)
                power = None
                for col in POWER_COLUMNS:
                    if col in f:
                        power = parse_number(f[col])
                        if power is not None:
                            break
            except (KeyError, ValueError) as exc:
                result.issue(no, "garbage", f"{exc}: {text}")
                continue
            cause = "" if power is not None else "power.draw N/A"
            status[f["index"]] = cause
            if poll.t_ns is None:
                unstamped.append((t, no, f["index"], cause, ""))
            if power is not None:
                result.samples.append(Sample(t, f["index"], power, None))
                got = True
        if poll.t_ns is not None:
            record_poll(result, poll.t_ns, poll.line, status, None, first)
        result.polls += 1
        if poll.t_ns is not None and not got:
            result.lost_polls += 1
    records_from_rows(result, unstamped)
    return result


def _csv_rows(path: str | Path, fmt: str, required: tuple[str, ...]):
    result = ParseResult(str(path), fmt)
    header: list[str] | None = None
    rows = []
    for no, text in read_lines(path, result):
        if not text.strip():
            continue
        row = next(csv.reader([text]))
        if row and row[0] == "t_ns":
            header = row
            if not all(c in header for c in required):
                result.issue(no, "garbage", f"header lacks {required}: {text}")
                header = None
            continue
        if header is None or len(row) != len(header) or not row[0].isdigit():
            note_other(result, no, text)
            continue
        if digits_ns(row[0]) is None:
            result.issue(no, "garbage", f"{OUT_OF_RANGE}: {text}")
            continue
        rows.append((no, text, dict(zip(header, row, strict=True))))
    return result, rows


def parse_nvml_csv(path: str | Path) -> ParseResult:
    """Parse the sampler's NVML log: energy in mJ since driver load, power in mW."""
    result, rows = _csv_rows(path, "nvml-csv", ("t_ns", "device", "energy_mj", "power_mw"))
    polled: list[tuple[int, int, str, str, str]] = []
    for no, text, f in rows:
        try:
            e = parse_number(f["energy_mj"])
            p = parse_number(f["power_mw"])
        except ValueError as exc:
            result.issue(no, "garbage", f"{exc}: {text}")
            polled.append((int(f["t_ns"]), no, f["device"], f"unreadable value ({exc})", ""))
            continue
        cause = "" if (e is not None or p is not None) else "NVML energy and power not read"
        polled.append((int(f["t_ns"]), no, f["device"], cause, missing_parts(p, e)))
        if cause:
            continue
        result.samples.append(
            Sample(
                int(f["t_ns"]),
                f["device"],
                None if p is None else p * NVML_POWER_W,
                None if e is None else e * NVML_ENERGY_J,
            )
        )
    records_from_rows(result, polled)
    result.polls = len(result.records)
    return result
