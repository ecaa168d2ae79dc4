"""Wall-clock stamps to integer nanoseconds since the Unix epoch.

Accepted stamp lines (one per poll, before the tool's output):

- the sampler's own ``#@ t_ns=<int> ...`` line;
- ``date +%s.%N`` -> ``1741101302.114913215`` (also with fewer fraction digits);
- ``date --iso-8601=ns`` -> ``2025-03-04T10:15:02,114913215-05:00`` (comma or dot
  fraction, ``Z`` or ``+hh:mm``/``+hhmm`` zone; a stamp without zone is local time).

Every time is checked to lie in ``0 .. MAX_NS`` (int64 ns: 1970 to 2262, what the poll
arithmetic holds); a stamp outside it, or one that is no date, raises :class:`ValueError`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

from .units import NS_PER_S

SAMPLER_STAMP = re.compile(r"^#@ t_ns=(\d+)\b(.*)$")
EPOCH_STAMP = re.compile(r"^(\d{9,11})(?:\.(\d{1,9}))?$")
ISO_STAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


#: The latest time a stamp may have (ns since the epoch): the int64 limit, 2262-04-11.
MAX_NS: int = 2**63 - 1
#: Why a time outside ``0 .. MAX_NS`` is refused.
OUT_OF_RANGE = "t_ns out of range (0 to 2^63-1 ns: 1970 to 2262)"


def check_ns(t_ns: int) -> int:
    """``t_ns`` when it lies in ``0 .. MAX_NS``, else :class:`ValueError` (:data:`OUT_OF_RANGE`)."""
    if not 0 <= t_ns <= MAX_NS:
        raise ValueError(OUT_OF_RANGE)
    return t_ns


def digits_ns(text: str) -> int | None:
    """A string of digits as ns when it is in range, else ``None`` (not even converted when
    longer than ``MAX_NS``)."""
    if not text.isdigit() or len(text) > len(str(MAX_NS)) or int(text) > MAX_NS:
        return None
    return int(text)


def seconds_to_ns(seconds: float) -> int:
    """Whole epoch seconds (``int(seconds)``) as ns; :class:`ValueError` when not finite or out
    of range."""
    if not math.isfinite(seconds):
        raise ValueError(OUT_OF_RANGE)
    return check_ns(int(seconds) * NS_PER_S)


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
    base = datetime.fromisoformat(f"{date}T{clock}")  # ValueError on a date that is none
    if zone is None:
        base = base.replace(tzinfo=local_tz) if local_tz else base.astimezone()
    elif zone == "Z":
        base = base.replace(tzinfo=UTC)
    else:
        z = zone.replace(":", "")
        sign = -1 if z[0] == "-" else 1
        offset = timedelta(hours=int(z[1:3]), minutes=int(z[3:5]))
        base = base.replace(tzinfo=timezone(sign * offset))
    return check_ns(int(base.timestamp()) * NS_PER_S + _frac_ns(frac))


def parse_stamp_line(line: str) -> int | None:
    """Return the stamp of a poll-stamp line in ns, or ``None`` if the line is no stamp;
    :class:`ValueError` when it looks like a stamp but its time is out of range or no date."""
    s = line.strip()
    m = SAMPLER_STAMP.match(s)
    if m:
        t = digits_ns(m.group(1))
        if t is None:
            raise ValueError(OUT_OF_RANGE)
        return t
    m = EPOCH_STAMP.match(s)
    if m:
        return check_ns(int(m.group(1)) * NS_PER_S + _frac_ns(m.group(2)))
    if ISO_STAMP.match(s):
        return iso_to_ns(s)
    return None


def parse_time_arg(text: str) -> int:
    """Parse a CLI time (ISO 8601, epoch seconds ``1741101302.5`` or ``<int>ns``) to ns;
    :class:`ValueError` when it is none of these or out of range."""
    s = text.strip()
    if s.endswith("ns") and s[:-2].isdigit():
        t = digits_ns(s[:-2])
        if t is None:
            raise ValueError(OUT_OF_RANGE)
        return t
    value = parse_stamp_line(s)
    if value is None:
        raise ValueError(f"not a time: {text!r} (use ISO 8601, epoch seconds or <int>ns)")
    return value


def ns_to_iso(t_ns: int) -> str:
    """``t_ns`` (ns since the epoch) as ISO 8601 UTC with milliseconds, for messages."""
    dt = datetime.fromtimestamp(t_ns // NS_PER_S, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{(t_ns % NS_PER_S) // 1_000_000:03d}Z"
