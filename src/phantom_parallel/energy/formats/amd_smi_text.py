"""amd-smi ``metric --power --energy`` plain text (the tool's default output), amd-smi 6.0-6.2.

One block per GPU, sections and keys in upper case, values with units::

    GPU: 0                                  GPU: 0                  (6.0: sections at col 0)
        TIMESTAMP: 1741101302   (6.1+)      POWER:
        POWER:                                  CURRENT_POWER: 150 W
            SOCKET_POWER: 300 W                 ...
            ...                             ENERGY:
        ENERGY:                                 TOTAL_ENERGY_CONSUMPTION: 783888888.719 J
            TOTAL_ENERGY_CONSUMPTION: 783888888.719 J

With ``--watch`` the first line is the ``'CTRL' + 'C'`` banner and every block carries a
``TIMESTAMP:`` (whole seconds) under its ``GPU:`` line (6.1+) or above it (6.0). Without
watch, each poll needs a stamp line (:mod:`..timestamps`). Fields and units are those of the
JSON/CSV variants (:func:`.amd_fields.amd_smi_reading`: W, tool joules corrected to
2^-16 J per count). A block that lacks keys the other blocks have (a log cut mid-block) is
reported as ``truncated`` at its last line; what it did contain is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..records import ParseResult, Sample
from ..timestamps import seconds_to_ns
from ..units import parse_number
from .amd_fields import FieldError, amd_smi_reading
from .amd_smi import BANNER
from .common import (
    missing_parts,
    note_other,
    read_lines,
    reading_status,
    record_poll,
    records_from_rows,
    split_polls,
)

GPU_LINE = re.compile(r"^GPU:\s*(\d+)\s*$")
TS_LINE = re.compile(r"^TIMESTAMP:\s*(\S+)\s*$")
KV_LINE = re.compile(r"^([A-Z][A-Z0-9_]*):\s*(.*?)\s*$")
#: Sections of ``metric --power --energy`` (a section may print ``N/A`` as a whole).
SECTIONS = ("power", "energy")


@dataclass
class _Block:
    gpu: str
    line: int
    last: int
    ts: str | None = None
    sections: dict[str, dict[str, str]] = field(default_factory=dict)
    section: str | None = None
    na: set[str] = field(default_factory=set)  # sections printed as ``ENERGY: N/A``

    def keys(self) -> set[str]:
        """``section/key`` of every value, ``section/`` of every section."""
        return {f"{s}/{k}" for s, kv in self.sections.items() for k in kv} | {
            f"{s}/" for s in self.sections
        }


def _blocks(result: ParseResult, lines: list[tuple[int, str]]) -> list[_Block]:
    """GPU blocks of one poll (or of a whole watch log); other lines become issues."""
    blocks: list[_Block] = []
    pending_ts: str | None = None
    for no, text in lines:
        s = text.strip()
        if not s or s == BANNER:
            continue
        cur = blocks[-1] if blocks else None
        m = GPU_LINE.match(s)
        if m:
            blocks.append(_Block(m.group(1), no, no, pending_ts))
            pending_ts = None
            continue
        m = TS_LINE.match(s)
        if m:
            if cur is not None and cur.ts is None and not cur.sections:
                cur.ts, cur.last = m.group(1), no  # 6.1+: under the GPU line
            else:
                pending_ts = m.group(1)  # 6.0: above the next GPU line
            continue
        m = KV_LINE.match(s)
        if m and cur is not None:
            key, value = m.group(1).lower(), m.group(2)
            if not value or key in SECTIONS:  # a section, or a whole section N/A
                cur.section = key
                cur.sections[key] = {}
                if value:
                    cur.na.add(key)
            else:
                cur.sections.setdefault(cur.section or "", {})[key] = value
            cur.last = no
            continue
        note_other(result, no, text)
    return blocks


def _read(result: ParseResult, b: _Block, full: set[str]) -> tuple[float | None, float | None]:
    power = b.sections.get("power", {})
    energy = b.sections.get("energy", {})
    missing = sorted(k for k in full - b.keys() if k.split("/")[0] not in b.na)
    if missing:
        gone = [k[:-1] for k in missing if k.endswith("/")]
        keys = [k for k in missing if not k.endswith("/") and k.split("/")[0] not in gone]
        what = [f"{s.upper()} section" for s in gone] + [k.split("/")[1].upper() for k in keys]
        result.issue(
            b.last,
            "truncated",
            f"GPU {b.gpu} block (from line {b.line}) cut off: no {', '.join(what)}; "
            "the values above this line are kept",
        )
    try:
        return amd_smi_reading(power, energy)
    except FieldError as exc:
        result.issue(b.last, "garbage", f"GPU {b.gpu}: {exc}")
        raise


def parse_text(path: str | Path) -> ParseResult:
    """Parse amd-smi metric text: stamped polls, or ``--watch`` output with TIMESTAMP lines."""
    result = ParseResult(str(path), "amd-smi-text")
    polls = split_polls(read_lines(path, result), result)
    per_poll = [(poll, _blocks(result, poll.lines)) for poll in polls]
    full: set[str] = set()
    for _, blocks in per_poll:
        for b in blocks:
            full |= b.keys()
    watch_rows: list[tuple[int, int, str, str, str]] = []
    for poll, blocks in per_poll:
        first = len(result.issues)
        status: dict[str, str] = {}
        partial: dict[str, str] = {}
        for b in blocks:
            t = poll.t_ns
            if t is None:
                try:
                    v = parse_number(b.ts)
                    t = None if v is None else seconds_to_ns(v)
                except ValueError:  # not a number, or out of range
                    t = None
            if t is None:
                result.issue(b.line, "lost", f"GPU {b.gpu}: no time stamp")
                continue
            try:
                p, e = _read(result, b, full)
            except FieldError as exc:
                cause, p, e = f"unreadable value ({exc})", None, None
            else:
                cause = reading_status(p, e)
            part = missing_parts(p, e)
            status[b.gpu], partial[b.gpu] = cause, part
            if poll.t_ns is None:
                watch_rows.append((t, b.line, b.gpu, cause, part))
            if not cause:
                result.samples.append(Sample(t, b.gpu, p, e))
        if poll.t_ns is not None:
            result.polls += 1
            record_poll(
                result, poll.t_ns, poll.line, status, {k: v for k, v in partial.items() if v}, first
            )
            if not any(v == "" for v in status.values()):
                result.lost_polls += 1
    if watch_rows:
        records_from_rows(result, watch_rows)
        result.polls += len({r[0] for r in watch_rows})
    return result
