"""Wall-clock stamps to integer nanoseconds since the Unix epoch.

Accepted stamp lines (one per poll, before the tool's output):

- the sampler's own ``#@ t_ns=<int> ...`` line;
- ``date +%s.%N`` -> ``1741101302.114913215`` (also with fewer fraction digits);
- ``date --iso-8601=ns`` -> ``2025-03-04T10:15:02,114913215-05:00`` (comma or dot
  fraction, ``Z`` or ``+hh:mm``/``+hhmm`` zone; a stamp without zone is local time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from .units import NS_PER_S

SAMPLER_STAMP = re.compile(r"^#@ t_ns=(\d+)\b(.*)$")
EPOCH_STAMP = re.compile(r"^(\d{9,11})(?:\.(\d{1,9}))?$")
ISO_STAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


def _frac_ns(frac: str | None) -> int:
    return int((frac or "0").ljust(9, "0")[:9])


def iso_to_ns(text: str, local_tz: timezone | None = None) -> int:
    """Convert an ISO 8601 stamp (ns precision kept exactly) to ns since the epoch.

    A stamp without a zone is taken in ``local_tz`` (default: this machine's local zone).
    Raises :class:`ValueError` when ``text`` is not such a stamp.
    """
    m = ISO_STAMP.match(text.strip())
    if not m:
        raise ValueError(f"not an ISO 8601 time stamp: {text!r}")
    date, clock, frac, zone = m.groups()
    base = datetime.fromisoformat(f"{date}T{clock}")
    if zone is None:
        base = base.replace(tzinfo=local_tz) if local_tz else base.astimezone()
    elif zone == "Z":
        base = base.replace(tzinfo=UTC)
    else:
        z = zone.replace(":", "")
        sign = -1 if z[0] == "-" else 1
        offset = timedelta(hours=int(z[1:3]), minutes=int(z[3:5]))
        base = base.replace(tzinfo=timezone(sign * offset))
    return int(base.timestamp()) * NS_PER_S + _frac_ns(frac)


def parse_stamp_line(line: str) -> int | None:
    """Return the stamp of a poll-stamp line in ns, or ``None`` if the line is no stamp."""
    s = line.strip()
    m = SAMPLER_STAMP.match(s)
    if m:
        return int(m.group(1))
    m = EPOCH_STAMP.match(s)
    if m:
        return int(m.group(1)) * NS_PER_S + _frac_ns(m.group(2))
    if ISO_STAMP.match(s):
        return iso_to_ns(s)
    return None


def parse_time_arg(text: str) -> int:
    """Parse a CLI time (ISO 8601, epoch seconds ``1741101302.5`` or ``<int>ns``) to ns."""
    s = text.strip()
    if s.endswith("ns") and s[:-2].isdigit():
        return int(s[:-2])
    value = parse_stamp_line(s)
    if value is None:
        raise ValueError(f"not a time: {text!r} (use ISO 8601, epoch seconds or <int>ns)")
    return value


def ns_to_iso(t_ns: int) -> str:
    """``t_ns`` (ns since the epoch) as ISO 8601 UTC with milliseconds, for messages."""
    dt = datetime.fromtimestamp(t_ns // NS_PER_S, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{(t_ns % NS_PER_S) // 1_000_000:03d}Z"
