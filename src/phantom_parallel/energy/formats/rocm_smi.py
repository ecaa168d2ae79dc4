"""rocm-smi ``--showpower --showenergycounter`` logs (ROCm 5.x and 6.x): text, ``--csv``, ``--json``.

rocm-smi prints no time stamps: each poll must be preceded by a stamp line (see
:mod:`..timestamps`). Parsing is by key/column name; MI250X secondary dies
(``N/A (Secondary die)`` or 0/0.0) are kept as readings with ``secondary`` set or zero values,
and attributed later (:mod:`..attribution`).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ..records import ParseResult, Sample
from .amd_fields import FieldError, rocm_reading
from .common import (
    Poll,
    missing_parts,
    note_other,
    read_lines,
    reading_status,
    record_poll,
    split_polls,
)

RULE = re.compile(r"^=+( .* )?=+$")
DEVICE_KV = re.compile(r"^GPU\[(\d+)\]\s*: (.+?): (.*)$")
DEVICE_MSG = re.compile(r"^GPU\[(\d+)\]\s*: (.*)$")
CARD = re.compile(r"^card(\d+)$")
GPU_REF = re.compile(r"GPU\[(\d+)\]|\bcard(\d+)\b")


def _emit(
    result: ParseResult, poll: Poll, devices: dict[str, dict[str, str]], line: int, first: int
) -> None:
    """Turn one poll's device fields into samples and a poll record (``first``: index of
    the poll's first issue in ``result.issues``)."""
    result.polls += 1
    if poll.t_ns is None:
        if devices:
            result.issue(line, "lost", "poll without time stamp (rocm-smi prints none)")
        return
    got = False
    status: dict[str, str] = {}
    partial: dict[str, str] = {}
    for dev, fields in devices.items():
        try:
            power, energy, secondary = rocm_reading(fields)
        except FieldError as exc:
            result.issue(line, "garbage", f"GPU[{dev}] {exc}")
            status[dev] = f"unreadable value ({exc})"
            continue
        status[dev] = reading_status(power, energy, secondary)
        partial[dev] = missing_parts(power, energy, secondary)
        if status[dev]:
            continue
        result.samples.append(Sample(poll.t_ns, dev, power, energy, None, secondary))
        got = True
    for i in result.issues[first:]:
        m = GPU_REF.search(i.text)
        dev = (m.group(1) or m.group(2)) if m else None
        if dev is not None and dev not in status:
            status[dev] = i.text.strip()[:120]
        elif dev is not None and partial.get(dev) and "(" not in partial[dev]:
            partial[dev] += f" ({i.text.strip()[:100]})"  # the tool's reason
    record_poll(
        result, poll.t_ns, poll.line, status, {k: v for k, v in partial.items() if v}, first
    )
    if not got:
        result.lost_polls += 1


def parse_text(path: str | Path) -> ParseResult:
    """Parse a log of stamped rocm-smi text outputs (banners, rules, footnotes, errors)."""
    result = ParseResult(str(path), "rocm-smi-text")
    for poll in split_polls(read_lines(path, result), result):
        first = len(result.issues)
        devices: dict[str, dict[str, str]] = {}
        for no, text in poll.lines:
            s = text.strip()
            if not s or RULE.match(s) or s.startswith("Primary die"):
                continue
            m = DEVICE_KV.match(text)
            if m and not m.group(2).startswith(("ERROR", "WARNING")):
                devices.setdefault(m.group(1), {})[m.group(2).strip()] = m.group(3).strip()
                continue
            m = DEVICE_MSG.match(text)
            if m:
                result.issue(no, "error", text)
                continue
            note_other(result, no, text)
        _emit(result, poll, devices, poll.line, first)
    return result


def parse_csv(path: str | Path) -> ParseResult:
    """Parse stamped rocm-smi ``--csv`` outputs: header ``device,<keys>`` repeated per call."""
    result = ParseResult(str(path), "rocm-smi-csv")
    for poll in split_polls(read_lines(path, result), result):
        first = len(result.issues)
        header: list[str] | None = None
        devices: dict[str, dict[str, str]] = {}
        for no, text in poll.lines:
            if not text.strip():
                continue
            row = next(csv.reader([text]))
            if row and row[0] == "device":
                header = row
                continue
            m = CARD.match(row[0]) if row else None
            if m and header is not None and len(row) == len(header):
                devices[m.group(1)] = dict(zip(header[1:], row[1:], strict=True))
            elif m and header is None:
                result.issue(no, "garbage", f"data row before any header: {text}")
            else:
                note_other(result, no, text)
        _emit(result, poll, devices, poll.line, first)
    return result


def parse_json(path: str | Path) -> ParseResult:
    """Parse stamped rocm-smi ``--json`` outputs: one ``{"card0": {...}, ...}`` line per call."""
    result = ParseResult(str(path), "rocm-smi-json")
    for poll in split_polls(read_lines(path, result), result):
        first = len(result.issues)
        devices: dict[str, dict[str, str]] = {}
        for no, text in poll.lines:
            s = text.strip()
            if s.startswith("{"):
                try:
                    doc = json.loads(s)
                except ValueError:
                    doc = None
                if isinstance(doc, dict):
                    for card, fields in doc.items():
                        m = CARD.match(card)
                        if m and isinstance(fields, dict):
                            devices[m.group(1)] = {str(k): str(v) for k, v in fields.items()}
                    continue
            note_other(result, no, text)
        _emit(result, poll, devices, poll.line, first)
    return result
