"""Poll accounting: which devices each poll should have read, and what it did not read.

A log is a sequence of polls (:class:`~.records.PollRecord`). The devices *expected* in every
poll are those the log names anywhere (any poll, a header, the parsed samples), plus the even
primary partner of every MI250X secondary seen. In each poll inside a measured window, each
expected device is:

- *read*: it gave a reading (power or energy counter, or a secondary-die marker);
- *partial*: read, but a quantity it has in other polls is missing (``power N/A`` while the
  counter was read): counted and named, and not a gap;
- *lost*: absent from the poll, ``N/A``, unreadable, or its only reading was an excluded zero
  (see :func:`drop_zero_runs`): counted, named, and a hole in its samples.

The *cadence* of a log is the median spacing of all its polls (lost ones included), not of
one device's readings, so a device that misses polls shows gaps against it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .records import ParseResult, Sample
from .timestamps import ns_to_iso
from .units import NS_PER_S

#: Events of one kind listed by time in a device's warning (the rest are counted).
EVENTS_NAMED = 3
#: Events kept per device in ``energy.json``.
EVENTS_KEPT = 50


@dataclass(frozen=True)
class PollEvent:
    """One expected device not (fully) read in one poll: ``kind`` is ``lost``, ``partial``
    or ``zero`` (an excluded 0.0 reading); ``t_ns`` ns since the epoch; ``line`` 1-based."""

    device: str
    t_ns: int
    line: int
    kind: str
    cause: str

    def describe(self, path: str) -> str:
        """``2025-03-04T15:15:05.000Z (log:17): <cause>``."""
        return f"{ns_to_iso(self.t_ns)} ({path}:{self.line}): {self.cause}"


@dataclass
class DevicePolls:
    """Poll counts of one device inside the measured windows."""

    device: str
    expected: int = 0
    read: int = 0
    lost: int = 0
    partial: int = 0
    events: list[PollEvent] = field(default_factory=list)

    def as_dict(self, path: str) -> dict[str, object]:
        """The ``energy.json`` fields: ``polls_expected``, ``polls_read``, ``polls_lost``,
        ``polls_partial`` and the first :data:`EVENTS_KEPT` events."""
        return {
            "polls_expected": self.expected,
            "polls_read": self.read,
            "polls_lost": self.lost,
            "polls_partial": self.partial,
            "poll_issues": [f"{e.kind}: {e.describe(path)}" for e in self.events[:EVENTS_KEPT]],
        }

    def warnings(self, host: str, path: str) -> list[str]:
        """One warning per kind of event: device, count, first times with causes."""
        out = []
        for kind, what in (("lost", "polls lost"), ("partial", "polls partly read")):
            evs = [e for e in self.events if e.kind == kind]
            if not evs:
                continue
            named = "; ".join(e.describe(path) for e in evs[:EVENTS_NAMED])
            more = f"; ... {len(evs) - EVENTS_NAMED} more" if len(evs) > EVENTS_NAMED else ""
            out.append(
                f"{host}/{self.device}: {len(evs)} of {self.expected} {what} in the window: "
                f"{named}{more}"
            )
        return out


def cadence_s(
    result: ParseResult, interval_s: float | None = None, floor_s: float | None = None
) -> float | None:
    """Nominal poll interval of a log (s).

    ``interval_s`` (given by the user) wins; else the median spacing of the log's poll times
    (every poll, lost ones included; the sample times when the log has no poll records),
    at least ``floor_s`` (the sampler's requested interval). ``None`` with fewer than 2 polls.
    """
    if interval_s:
        return interval_s
    times = sorted({r.t_ns for r in result.records if r.t_ns is not None})
    if len(times) < 2:
        times = sorted({s.t_ns for s in result.samples})
    if len(times) < 2:
        return floor_s
    med = float(np.median(np.diff(np.array(times, dtype=np.int64)))) / NS_PER_S
    return max(med, floor_s or 0.0)


def expected_devices(result: ParseResult, secondaries: Iterable[str] = ()) -> set[str]:
    """Devices every poll should read: named anywhere in the log, plus the primary partner
    (even index) of each secondary."""
    devs = set(result.declared) | {s.device for s in result.samples}
    for r in result.records:
        devs |= set(r.status)
    for d in list(devs) + list(secondaries):
        if d in secondaries and d.isdigit() and int(d) % 2 == 1:
            devs.add(str(int(d) - 1))
    return devs


def drop_zero_runs(
    samples: Sequence[Sample], secondaries: Iterable[str] = ()
) -> tuple[list[Sample], list[PollEvent]]:
    """Exclude 0.0 readings of a non-secondary device that lie between non-zero readings.

    A primary GPU package never draws exactly 0.0 W while its neighbours read hundreds: such
    a power reading (and a 0.0 J counter reading between non-zero ones) is a failed read.
    It is removed from the sample (the trapezoid bridges its neighbours); a sample left with
    neither power nor energy is dropped (a lost poll of that device). Returns the kept
    samples and one ``zero`` event per excluded reading (``line`` 0: the sample's time names it).
    """
    sec = set(secondaries)
    by_dev: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_dev[s.device].append(s)
    out: list[Sample] = []
    events: list[PollEvent] = []
    for dev, ss in by_dev.items():
        ss = sorted(ss, key=lambda x: x.t_ns)
        if dev in sec:
            out += ss
            continue
        bad_p = _inner_zeros([s.power_w for s in ss])
        bad_e = _inner_zeros([s.energy_j for s in ss])
        for i, s in enumerate(ss):
            if i not in bad_p and i not in bad_e:
                out.append(s)
                continue
            what = " and ".join(
                w
                for w, bad in (("power 0.0 W", bad_p), ("energy counter 0.0 J", bad_e))
                if i in bad
            )
            new = replace(
                s,
                power_w=None if i in bad_p else s.power_w,
                energy_j=None if i in bad_e else s.energy_j,
            )
            kept = new.power_w is not None or new.energy_j is not None
            events.append(
                PollEvent(
                    dev,
                    s.t_ns,
                    0,
                    "zero",
                    f"{what} between non-zero readings: excluded"
                    + ("" if kept else " (no other value: poll lost)"),
                )
            )
            if kept:
                out.append(new)
    out.sort(key=lambda x: x.t_ns)
    return out, events


def _inner_zeros(values: list[float | None]) -> set[int]:
    """Indices of runs of exact zeros with a non-zero (non-None) value on both sides."""
    idx = [i for i, v in enumerate(values) if v is not None]
    bad: set[int] = set()
    k = 0
    while k < len(idx):
        if values[idx[k]] == 0.0:
            j = k
            while j < len(idx) and values[idx[j]] == 0.0:
                j += 1
            if k > 0 and j < len(idx):
                bad.update(idx[k:j])
            k = j
        else:
            k += 1
    return bad


def account(
    result: ParseResult,
    expected: Iterable[str],
    windows: Sequence[tuple[int, int]],
    zero_events: Sequence[PollEvent] = (),
) -> dict[str, DevicePolls]:
    """Count, per expected device, the polls inside ``windows`` read, partly read and lost."""
    expected = sorted(expected)
    has: dict[str, set[str]] = defaultdict(set)  # quantities a device has somewhere
    for s in result.samples:
        if s.power_w is not None:
            has[s.device].add("power")
        if s.energy_j is not None:
            has[s.device].add("energy")
    recs = sorted((r for r in result.records if r.t_ns is not None), key=lambda r: r.t_ns or 0)
    times = [r.t_ns for r in recs]
    zeros: dict[tuple[str, int], PollEvent] = {}
    for e in zero_events:  # the poll a zero belongs to: the last poll at or before it
        k = bisect.bisect_right(times, e.t_ns) - 1
        if k >= 0:
            zeros[(e.device, k)] = e
    out = {d: DevicePolls(d) for d in expected}
    for k, r in enumerate(recs):
        t = int(r.t_ns or 0)
        if not any(a <= t <= b for a, b in windows):
            continue
        for dev in expected:
            dp = out[dev]
            dp.expected += 1
            status = r.status.get(dev)
            z = zeros.get((dev, k))
            if status == "":
                if z is not None and "poll lost" in z.cause:
                    dp.lost += 1
                    dp.events.append(PollEvent(dev, t, r.line, "lost", z.cause))
                    continue
                dp.read += 1
                part = r.partial.get(dev, "")
                if z is not None:
                    part = z.cause
                elif part and part.split()[0] not in has[dev]:
                    part = ""  # the device never has that quantity: nothing is missing
                if part:
                    dp.partial += 1
                    dp.events.append(PollEvent(dev, t, r.line, "partial", part))
                continue
            dp.lost += 1
            cause = status or "absent from the poll"
            if status is None and r.errors:
                cause += f" (tool said: {r.errors[-1].strip()[:100]})"
            dp.events.append(PollEvent(dev, t, r.line, "lost", cause))
    return out
