"""amd-smi ``metric --power --energy`` logs (ROCm 6.x), ``--json`` and ``--csv``, with or
without ``--watch``; also ``amd-smi monitor -p`` CSV (``power_usage`` column).

Time of a reading: the poll's stamp line when there is one (the sampler's or a shell loop's),
else the ``timestamp`` field of watch mode (whole seconds, ``int(time.time())``).
"""

from __future__ import annotations

import bisect
import csv
import json
from pathlib import Path
from typing import Any

from ..records import ParseResult, Sample
from ..timestamps import seconds_to_ns
from ..units import parse_number
from .amd_fields import AMD_ENERGY_KEY, AMD_POWER_KEYS, FieldError, amd_smi_reading
from .common import missing_parts, note_other, read_lines, reading_status, record_poll, split_polls

BANNER = "'CTRL' + 'C' to stop watching output:"


def _entries(doc: Any) -> list[dict[str, Any]] | None:
    if isinstance(doc, dict) and isinstance(doc.get("gpu_data"), list):
        doc = doc["gpu_data"]
    if isinstance(doc, dict) and "gpu" in doc:
        doc = [doc]
    if isinstance(doc, list) and all(isinstance(e, dict) and "gpu" in e for e in doc):
        return doc
    return None


def _time(t_ns: int | None, ts: object) -> int | None:
    if t_ns is not None:
        return t_ns
    try:
        v = parse_number(ts)
        return None if v is None else seconds_to_ns(v)
    except ValueError:  # not a number, or out of range: the entry is lost without a time
        return None


class _Acc:
    """Readings of one poll (a stamped poll, or one watch iteration) -> one poll record."""

    def __init__(self, result: ParseResult, t_ns: int | None, line: int) -> None:
        self.result, self.t_ns, self.line = result, t_ns, line
        self.first = len(result.issues)
        self.status: dict[str, str] = {}
        self.partial: dict[str, str] = {}

    def add(self, no: int, gpu: object, ts: object, p: object, e: object) -> bool:
        """Add one GPU entry; True when it gave a reading."""
        dev = str(gpu).strip()
        t = _time(self.t_ns, ts)
        if t is None:
            self.result.issue(no, "lost", f"gpu {dev}: no time stamp")
            return False
        if self.t_ns is None:
            self.t_ns = t
        try:
            power, energy = amd_smi_reading(p, e)
        except FieldError as exc:
            self.result.issue(no, "garbage", f"gpu {dev}: {exc}")
            self.status[dev] = f"unreadable value ({exc})"
            return False
        self.status[dev] = reading_status(power, energy)
        if self.status[dev]:
            return False
        if missing_parts(power, energy):
            self.partial[dev] = missing_parts(power, energy)
        self.result.samples.append(Sample(t, dev, power, energy))
        return True

    def close(self) -> None:
        """Record the poll (if it has a time) and count it."""
        self.result.polls += 1
        if self.t_ns is None:
            return
        record_poll(self.result, self.t_ns, self.line, self.status, self.partial, self.first)
        if not any(v == "" for v in self.status.values()):
            self.result.lost_polls += 1


def parse_json(path: str | Path) -> ParseResult:
    """Parse amd-smi JSON output(s): arrays concatenated (watch) or one per stamped poll.

    The stream as a whole is not valid JSON; documents are decoded one after another with
    :meth:`json.JSONDecoder.raw_decode`. A document that does not decode is reported at
    its first line and parsing resumes at the next line.
    """
    result = ParseResult(str(path), "amd-smi-json")
    decoder = json.JSONDecoder()
    for poll in split_polls(read_lines(path, result), result):
        lines = poll.lines
        block = "\n".join(t for _, t in lines)
        starts = [0]
        for _, t in lines[:-1]:
            starts.append(starts[-1] + len(t) + 1)
        acc = _Acc(result, poll.t_ns, poll.line)
        i = 0
        while i < len(lines):
            no, text = lines[i]
            s = text.strip()
            if not s or s == BANNER:
                i += 1
                continue
            if s[0] in "[{":
                pos = starts[i] + len(text) - len(text.lstrip())
                try:
                    doc, end = decoder.raw_decode(block, pos)
                except ValueError:
                    doc, end = None, -1
                entries = _entries(doc) if end >= 0 else None
                if entries is not None:
                    if poll.t_ns is None:  # watch mode: one iteration per document
                        acc = _Acc(result, None, no)
                    for entry in entries:
                        acc.add(
                            no,
                            entry["gpu"],
                            entry.get("timestamp"),
                            entry.get("power"),
                            entry.get("energy"),
                        )
                    if poll.t_ns is None:
                        acc.close()
                    j = bisect.bisect_right(starts, end) - 1  # line where the document ends
                    rest = block[end : starts[j] + len(lines[j][1])].strip()
                    if rest:
                        result.issue(lines[j][0], "garbage", rest)
                    i = j + 1
                    continue
            note_other(result, no, text)
            i += 1
        if poll.t_ns is not None:
            acc.close()
    return result


def parse_csv(path: str | Path) -> ParseResult:
    """Parse amd-smi CSV output(s): header (``gpu,...`` or ``timestamp,gpu,...``) repeated per
    call or watch iteration, CRLF line ends, blank lines between blocks."""
    result = ParseResult(str(path), "amd-smi-csv")
    for poll in split_polls(read_lines(path, result), result):
        header: list[str] | None = None
        acc = _Acc(result, poll.t_ns, poll.line)
        blocks = 0
        for no, text in poll.lines:
            s = text.strip()
            if not s or s == BANNER:
                continue
            row = next(csv.reader([text]))
            if "gpu" in row and (row[0] in ("gpu", "timestamp")):
                header = row
                if poll.t_ns is None:  # watch mode: a header starts an iteration
                    if blocks:
                        acc.close()
                    acc = _Acc(result, None, no)
                blocks += 1
                continue
            if (
                header is None
                or len(row) != len(header)
                or not row[header.index("gpu")].strip().isdigit()
            ):
                if header is None and row and row[0].strip().isdigit():
                    result.issue(no, "garbage", f"data row before any header: {text}")
                else:
                    note_other(result, no, text)
                continue
            fields = dict(zip(header, row, strict=True))
            power = {k: fields[k] for k in AMD_POWER_KEYS if k in fields}
            energy = {AMD_ENERGY_KEY: fields[AMD_ENERGY_KEY]} if AMD_ENERGY_KEY in fields else {}
            acc.add(no, fields["gpu"].strip(), fields.get("timestamp"), power, energy)
        if poll.t_ns is not None or blocks:
            acc.close()
    return result
