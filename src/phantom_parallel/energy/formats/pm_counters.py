"""HPE Cray EX ``/sys/cray/pm_counters/`` logs (node, CPU, memory and accelerator energy).

Each counter file holds ``<value> <unit> <timestamp> us`` (``123456 J 1741101302123456 us``:
energy in J, power in W, the controller's own time stamp in µs); ``freshness`` (increments at
each update, ~10 Hz), ``generation`` and ``startup`` hold one integer. Two log layouts:

- the sampler's CSV, header ``t_ns,counter,content``: one row per file per poll, ``content``
  the file's text, or ``!<error>`` when it could not be read (``!missing``: file absent);
- ``grep . /sys/cray/pm_counters/*`` output (``<path>/<file>:<content>``), with or without a
  stamp line before each poll (a poll without stamps ends where a file repeats).

Devices: ``node`` (``energy``/``power``: the whole node), ``cpu``, ``memory``, ``accel<k>``.
A reading's time is its file's time stamp. A change of ``generation`` or ``startup`` starts a
new counter epoch (the counters restarted: handled as a reset by :mod:`..integrate`). A poll
whose ``freshness`` equals the previous one repeats old values: dropped; when the values stay
stale longer than :data:`STALE_S`, the poll is lost for every device ("stale").
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..records import ParseResult, Sample
from ..timestamps import MAX_NS, OUT_OF_RANGE, digits_ns, ns_to_iso
from ..units import NS_PER_S
from .common import note_other, read_lines, record_poll, split_polls

META = ("freshness", "generation", "startup")
COUNTER = re.compile(r"^(?:(cpu|memory|accel\d+)_)?(energy|power)$")
GREP_LINE = re.compile(r"^(?:\S*/)?([a-z0-9_]+):(.*)$")
CSV_HEADER = "t_ns,counter,content"
UNITS = {"energy": "J", "power": "W"}
#: Other files of the folder that a ``grep .`` log shows (skipped, not reported).
OTHER_FILES = ("power_cap", "raw_scan_hz", "version")
#: Stale values (unchanged ``freshness``) are tolerated this long (s) before polls count lost.
STALE_S = 1.0


def _device(counter: str) -> tuple[str, str] | None:
    m = COUNTER.match(counter)
    return None if not m else (m.group(1) or "node", m.group(2))


def _rows(result: ParseResult, path: str | Path) -> list[tuple[int | None, int, str, str]]:
    """(poll stamp ns or None, line, file name, content) of either layout; a new poll key per
    stamp, per sampler ``t_ns``, or (unstamped grep) whenever a file name repeats."""
    out: list[tuple[int | None, int, str, str]] = []
    for poll in split_polls(read_lines(path, result), result):
        for no, text in poll.lines:
            s = text.strip()
            if not s or s == CSV_HEADER:
                continue
            if s[0].isdigit() and s.count(",") >= 2:
                t, name, content = next(csv.reader([s]))[:3]
                if t.isdigit():
                    if (t_ns := digits_ns(t)) is None:
                        result.issue(no, "garbage", f"{OUT_OF_RANGE}: {text}")
                    else:
                        out.append((t_ns, no, name, content))
                    continue
            m = GREP_LINE.match(s)
            if m and (m.group(1) in META or _device(m.group(1))):
                out.append((poll.t_ns, no, m.group(1), m.group(2).strip()))
                continue
            if m and (m.group(1) in OTHER_FILES or "pm_counters/" in s.split(":")[0]):
                continue  # power caps, raw_scan_hz, version: not energy data
            note_other(result, no, text)
    return out


Row = tuple[int | None, int, str, str]


def _polls(rows: list[Row]) -> list[list[Row]]:
    """Rows grouped into polls (same stamp; without stamps, until a file name repeats)."""
    polls: list[list[Row]] = []
    seen: set[str] = set()
    for r in rows:
        if not polls or r[0] != polls[-1][0][0] or (r[0] is None and r[2] in seen):
            polls.append([])
            seen = set()
        polls[-1].append(r)
        seen.add(r[2])
    return polls


def _reading(content: str, kind: str) -> tuple[float, int | None]:
    """(value, time stamp ns or None) of ``value unit stamp us``; ValueError if malformed."""
    parts = content.split()
    if not parts or len(parts) > 4:
        raise ValueError(f"malformed content {content!r}")
    value = float(parts[0])
    if len(parts) >= 2 and parts[1] != UNITS[kind]:
        raise ValueError(f"unit {parts[1]!r}, expected {UNITS[kind]}")
    if len(parts) >= 3:
        if not parts[2].isdigit() or (len(parts) == 4 and parts[3] != "us"):
            raise ValueError(f"malformed time stamp in {content!r}")
        if (us := digits_ns(parts[2])) is None or us * 1000 > MAX_NS:
            raise ValueError(f"time stamp out of range in {content!r}")
        return value, us * 1000
    return value, None


def _file(dev: str, kind: str) -> str:
    return kind if dev == "node" else f"{dev}_{kind}"


def parse_pm_counters(path: str | Path) -> ParseResult:
    """Parse a pm_counters log (sampler CSV or ``grep .`` layout) into per-device samples."""
    result = ParseResult(str(path), "pm-counters")
    epochs: dict[tuple[str, str], int] = {}
    last_epoch: int | None = None
    last_fresh: tuple[str, int] | None = None  # (freshness, time of the poll that read it)
    failed: dict[tuple[str, str], str] = {}  # (device, kind) -> first failure
    read: set[tuple[str, str]] = set()
    for rows in _polls(_rows(result, path)):
        t_poll, line = rows[0][0], rows[0][1]
        first = len(result.issues)
        meta: dict[str, str] = {}
        vals: dict[str, dict[str, tuple[float, int | None]]] = {}
        errors: dict[str, dict[str, str]] = {}
        for _, no, name, content in rows:
            if name in META:
                meta[name] = content.split()[0] if content.split() else ""
                continue
            dk = _device(name)
            if dk is None:
                continue
            dev, kind = dk
            result.declared.add(dev)
            try:
                if content.startswith("!"):
                    raise OSError(content[1:].strip() or "unreadable")
                vals.setdefault(dev, {})[kind] = _reading(content, kind)
                read.add(dk)
            except (OSError, ValueError) as exc:
                why = f"{name}: {exc}"
                result.issue(no, "error" if isinstance(exc, OSError) else "garbage", why)
                errors.setdefault(dev, {})[kind] = why
                failed.setdefault(dk, why)
        stamps = [ts for d in vals.values() for _, ts in d.values() if ts is not None]
        t_rec = t_poll if t_poll is not None else (min(stamps) if stamps else None)
        result.polls += 1
        if t_rec is None:
            result.issue(line, "lost", "pm_counters poll without any time stamp")
            result.lost_polls += 1
            continue
        status = {d: "; ".join(e.values()) for d, e in errors.items() if d not in vals}
        fresh = meta.get("freshness")
        if fresh is not None and last_fresh is not None and fresh == last_fresh[0]:
            if t_rec - last_fresh[1] <= STALE_S * NS_PER_S:
                continue  # a repeat of the previous values: no new information, no loss
            why = f"stale: freshness {fresh} unchanged since {ns_to_iso(last_fresh[1])}"
            record_poll(result, t_rec, line, dict.fromkeys(vals, why) | status, None, first)
            result.lost_polls += 1
            continue
        if fresh is not None:
            last_fresh = (fresh, t_rec)
        key = (meta.get("generation", ""), meta.get("startup", ""))
        epoch = epochs.setdefault(key, len(epochs))
        if last_epoch is not None and epoch != last_epoch:
            result.warnings.append(
                f"{path}:{line}: pm_counters generation/startup changed at {ns_to_iso(t_rec)} "
                f"(generation {key[0]}, startup {key[1]}): counters restarted; the interval "
                "is filled from power"
            )
        last_epoch = epoch
        partial: dict[str, str] = {}
        for dev, q in vals.items():
            e, p = q.get("energy"), q.get("power")
            t = (e or p or (0.0, None))[1] or t_rec
            result.samples.append(
                Sample(t, dev, p[0] if p else None, e[0] if e else None, None, False, epoch)
            )
            status[dev] = ""
            partial[dev] = "; ".join(f"{k} N/A ({why})" for k, why in errors.get(dev, {}).items())
        record_poll(result, t_rec, line, status, {k: v for k, v in partial.items() if v}, first)
        if not any(v == "" for v in status.values()):
            result.lost_polls += 1
    accels = [int(d[5:]) for d in result.declared if d.startswith("accel")]
    for k in range(max(accels, default=-1) + 1):
        if f"accel{k}" not in result.declared:
            result.declared.add(f"accel{k}")
            result.warnings.append(
                f"{path}: accel{k}: no accel{k}_energy or accel{k}_power in the log "
                f"(accel{max(accels)} is there)"
            )
    for (dev, kind), why in sorted(failed.items()):
        if (dev, kind) not in read:
            result.warnings.append(
                f"{path}: {dev}: {_file(dev, kind)} never read ({why})"
                + ("; energy from power integration" if kind == "energy" else "")
            )
    return result


def is_pm_line(s: str) -> bool:
    """True for a line of a pm_counters log (sniffing)."""
    if s.startswith(CSV_HEADER):
        return True
    m = GREP_LINE.match(s)
    return bool(m and (m.group(1) in META or _device(m.group(1))))
