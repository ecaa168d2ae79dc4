"""Helpers shared by the parsers: reading a log, splitting it into stamped polls, noise."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..records import ParseResult, PollRecord
from ..timestamps import parse_stamp_line

#: Tool messages that are reported as ``error`` issues, not as garbage.
ERROR_LINE = re.compile(
    r"^(ERROR|WARNING|Error|Warning)\b|^Traceback \(most recent call last\)|^\s+File \"|"
    r"^\s{4}\S|^[A-Za-z_.]*(Error|Exception)\b.*:|^\s*\^+\s*$"
)


@dataclass
class Poll:
    """Lines of one poll: ``t_ns`` from its stamp line (``None`` before the first stamp)."""

    t_ns: int | None
    line: int  # 1-based line number of the stamp (0 if none)
    lines: list[tuple[int, str]] = field(default_factory=list)


def read_lines(path: str | Path, result: ParseResult) -> list[tuple[int, str]]:
    """Read a log as (1-based line number, text) pairs without line ends (LF or CRLF).

    Bytes that are not UTF-8 are replaced. A last line without a line end is a truncated
    write: it is reported as a ``truncated`` issue and dropped; a line with a carriage return
    inside is reported as ``garbage`` and dropped.
    """
    data = Path(path).read_bytes().decode("utf-8", errors="replace")
    raw = data.split("\n")
    out = [(i + 1, s.rstrip("\r")) for i, s in enumerate(raw)]
    last = out.pop()  # text after the final "\n" ("" for a complete file)
    if last[1].strip():
        result.issue(last[0], "truncated", last[1])
    # a carriage return inside a line belongs to no supported format (and trips csv): garbage
    for no, s in out:
        if "\r" in s:
            result.issue(no, "garbage", s.replace("\r", "\\r"))
    return [(no, s) for no, s in out if "\r" not in s]


def split_polls(lines: list[tuple[int, str]], result: ParseResult | None = None) -> list[Poll]:
    """Split lines at poll-stamp lines (sampler ``#@ t_ns=``, ``date +%s.%N``, ISO 8601).

    A stamp line whose time is out of range or no date (``2025-13-45T...``) is reported in
    ``result`` as ``garbage`` and starts a poll without a time, so the lines after it are not
    given the previous poll's time.
    """
    polls = [Poll(None, 0)]
    for no, text in lines:
        try:
            t = parse_stamp_line(text)
        except ValueError as exc:
            if result is None:
                polls[-1].lines.append((no, text))
            else:
                result.issue(no, "garbage", f"{exc}: {text}")
                polls.append(Poll(None, no))
            continue
        if t is not None:
            polls.append(Poll(t, no))
        else:
            polls[-1].lines.append((no, text))
    if not polls[0].lines:
        polls.pop(0)
    return polls


def is_error(text: str) -> bool:
    """True for tool error/warning messages and Python traceback lines."""
    return bool(ERROR_LINE.match(text))


def note_other(result: ParseResult, no: int, text: str) -> None:
    """Record a line that is not data: blank lines are ignored, errors and garbage reported."""
    if not text.strip():
        return
    result.issue(no, "error" if is_error(text) else "garbage", text)


def record_poll(
    result: ParseResult,
    t_ns: int | None,
    line: int,
    status: dict[str, str],
    partial: dict[str, str] | None = None,
    issues_from: int = 0,
) -> PollRecord:
    """Append a :class:`~..records.PollRecord`; its errors are the ``error`` issues recorded
    since index ``issues_from`` of ``result.issues`` (the lines of this poll)."""
    errors = [i.text for i in result.issues[issues_from:] if i.kind in ("error", "garbage")]
    rec = PollRecord(t_ns, line, dict(status), dict(partial or {}), errors)
    result.records.append(rec)
    return rec


def reading_status(power: float | None, energy: float | None, secondary: bool = False) -> str:
    """``""`` when a reading has power or energy (or is a secondary-die marker), else the cause."""
    if power is None and energy is None and not secondary:
        return "power and energy N/A"
    return ""


def missing_parts(power: float | None, energy: float | None, secondary: bool = False) -> str:
    """What a kept reading lacks (``"power N/A"``, ``"energy N/A"``), ``""`` if nothing."""
    if secondary or (power is None and energy is None):
        return ""
    return "power N/A" if power is None else ("energy N/A" if energy is None else "")


def group_rows_by_repeat(keys: list[str]) -> list[int]:
    """Poll index of each row of a log without poll stamps: a new poll starts when a device
    repeats (``keys``: the device of each row, in log order)."""
    out, seen, n = [], set(), 0
    for k in keys:
        if k in seen:
            n, seen = n + 1, set()
        seen.add(k)
        out.append(n)
    return out


def records_from_rows(result: ParseResult, rows: list[tuple[int, int, str, str, str]]) -> None:
    """Poll records of a log whose rows carry their own time and no poll stamp.

    rows: ``(t_ns, line, device, status, partial)`` in log order; a poll is a run of rows
    in which no device repeats (:func:`group_rows_by_repeat`); its time is its first row's.
    """
    groups = group_rows_by_repeat([r[2] for r in rows])
    current: PollRecord | None = None
    last = -1
    for g, (t, no, dev, status, partial) in zip(groups, rows, strict=True):
        if g != last:
            current = PollRecord(t, no)
            result.records.append(current)
            last = g
        assert current is not None
        current.status[dev] = status
        if partial:
            current.partial[dev] = partial
