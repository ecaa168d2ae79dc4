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
from ..units import NS_PER_S, parse_number
from .amd_fields import AMD_ENERGY_KEY, AMD_POWER_KEYS, FieldError, amd_smi_reading
from .common import Poll, note_other, read_lines, split_polls

BANNER = "'CTRL' + 'C' to stop watching output:"


def _entries(doc: Any) -> list[dict[str, Any]] | None:
    if isinstance(doc, dict) and isinstance(doc.get("gpu_data"), list):
        doc = doc["gpu_data"]
    if isinstance(doc, dict) and "gpu" in doc:
        doc = [doc]
    if isinstance(doc, list) and all(isinstance(e, dict) and "gpu" in e for e in doc):
        return doc
    return None


def _time(poll: Poll, ts: object) -> int | None:
    if poll.t_ns is not None:
        return poll.t_ns
    try:
        v = parse_number(ts)
    except ValueError:
        return None
    return None if v is None else int(v) * NS_PER_S


def _add(
    result: ParseResult, poll: Poll, no: int, gpu: object, ts: object, p: object, e: object
) -> bool:
    t = _time(poll, ts)
    if t is None:
        result.issue(no, "lost", f"gpu {gpu}: no time stamp")
        return False
    try:
        power, energy = amd_smi_reading(p, e)
    except FieldError as exc:
        result.issue(no, "garbage", f"gpu {gpu}: {exc}")
        return False
    if power is None and energy is None:
        return False
    result.samples.append(Sample(t, str(gpu), power, energy))
    return True


def parse_json(path: str | Path) -> ParseResult:
    """Parse amd-smi JSON output(s): arrays concatenated (watch) or one per stamped poll.

    The stream as a whole is not valid JSON; documents are decoded one after another with
    :meth:`json.JSONDecoder.raw_decode`. A document that does not decode is reported at
    its first line and parsing resumes at the next line.
    """
    result = ParseResult(str(path), "amd-smi-json")
    decoder = json.JSONDecoder()
    for poll in split_polls(read_lines(path, result)):
        lines = poll.lines
        block = "\n".join(t for _, t in lines)
        starts = [0]
        for _, t in lines[:-1]:
            starts.append(starts[-1] + len(t) + 1)
        got = False
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
                    for entry in entries:
                        got |= _add(
                            result,
                            poll,
                            no,
                            entry["gpu"],
                            entry.get("timestamp"),
                            entry.get("power"),
                            entry.get("energy"),
                        )
                    j = bisect.bisect_right(starts, end) - 1  # line where the document ends
                    rest = block[end : starts[j] + len(lines[j][1])].strip()
                    if rest:
                        result.issue(lines[j][0], "garbage", rest)
                    i = j + 1
                    continue
            note_other(result, no, text)
            i += 1
        result.polls += 1
        if poll.t_ns is not None and not got:
            result.lost_polls += 1
    return result


def parse_csv(path: str | Path) -> ParseResult:
    """Parse amd-smi CSV output(s): header (``gpu,...`` or ``timestamp,gpu,...``) repeated per
    call or watch iteration, CRLF line ends, blank lines between blocks."""
    result = ParseResult(str(path), "amd-smi-csv")
    for poll in split_polls(read_lines(path, result)):
        header: list[str] | None = None
        got = False
        for no, text in poll.lines:
            s = text.strip()
            if not s or s == BANNER:
                continue
            row = next(csv.reader([text]))
            if "gpu" in row and (row[0] in ("gpu", "timestamp")):
                header = row
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
            got |= _add(
                result, poll, no, fields["gpu"].strip(), fields.get("timestamp"), power, energy
            )
        result.polls += 1
        if poll.t_ns is not None and not got:
            result.lost_polls += 1
    return result
