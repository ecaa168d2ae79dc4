"""Energy of one device over a time window, from its samples.

Two methods, both always computed when the data allow:

- **counter**: difference of the cumulative energy counter, linearly interpolated at the
  window edges. A decrease is a wrap when the range is known (RAPL) and a reset otherwise;
  across a reset the interval is filled with the trapezoid of power when both powers are
  known (else it contributes 0 J and is reported). A counter that does not move over the
  window while the device draws power (> ``STUCK_POWER_W``) is *stuck*: the trapezoid is used.
- **integration**: trapezoid of power over the window (interpolated at the edges); gaps are
  bridged, not counted as 0 W, and reported.

Coverage = fraction of the window in which the device has samples no further apart than the
gap threshold (``gap_factor`` x the nominal poll interval: the poll cadence of the whole log,
:func:`.polls.cadence_s`; without it, the device's own median spacing). Any coverage below
100 % is warned about, with the time of the largest gap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .records import Sample
from .timestamps import ns_to_iso
from .units import NS_PER_S

STUCK_POWER_W = 5.0
GAP_FACTOR = 2.5
DISAGREEMENT_WARN = 0.05
#: Coverage below this is warned about (1 - rounding).
COVERAGE_FULL = 1.0 - 1e-9
#: Highest plausible mean power of one device (W): a GPU package; a whole node reads more.
MAX_PLAUSIBLE_W = 1500.0
MAX_PLAUSIBLE_NODE_W = 20000.0


@dataclass
class DeviceEnergy:
    """Energy of one device in one window (J), with how it was obtained."""

    device: str
    energy_j: float
    method: str  # counter | integration | none
    counter_j: float | None = None
    integration_j: float | None = None
    rel_diff: float | None = None
    window_s: float = 0.0
    coverage: float = 0.0
    max_gap_s: float = 0.0
    max_gap_at_ns: int = 0
    gap_threshold_s: float = 0.0
    samples: int = 0
    resets: int = 0
    wraps: int = 0
    stuck: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def mean_power_w(self) -> float | None:
        """Mean power over the window (W)."""
        return self.energy_j / self.window_s if self.window_s > 0 else None


def _trapz(t: np.ndarray, p: np.ndarray, a: int, b: int) -> float:
    """Trapezoid of p(t) (t in ns, p in W) over [a, b] clipped to [t0, tn], in J."""
    a, b = max(a, int(t[0])), min(b, int(t[-1]))
    if b <= a or len(t) < 2:
        return 0.0
    inner = (t > a) & (t < b)
    tt = np.concatenate(([a], t[inner], [b])).astype(np.float64)
    pp = np.concatenate(([np.interp(a, t, p)], p[inner], [np.interp(b, t, p)]))
    return float(np.sum(0.5 * (pp[1:] + pp[:-1]) * np.diff(tt)) / NS_PER_S)


def coverage(
    times_ns: np.ndarray, start_ns: int, end_ns: int, max_gap_ns: float
) -> tuple[float, float, int]:
    """(fraction of [start, end] covered by samples at most ``max_gap_ns`` apart, largest gap
    in s, start of the largest gap in ns since the epoch).

    The largest gap counts the edges (window start to first sample, last sample to end) and
    the full length of any sample interval overlapping the window.
    """
    win = end_ns - start_ns
    if win <= 0:
        return 0.0, 0.0, start_ns
    t = np.unique(times_ns)
    if len(t) == 0:
        return 0.0, win / NS_PER_S, start_ns
    gaps = [(max(0, int(t[0]) - start_ns), start_ns), (max(0, end_ns - int(t[-1])), int(t[-1]))]
    covered = 0.0
    for lo, hi in itertools.pairwise(t):
        ov = min(hi, end_ns) - max(lo, start_ns)
        if ov <= 0:
            continue
        dt = hi - lo
        gaps.append((int(dt), int(lo)))
        if dt <= max_gap_ns:
            covered += ov
    gap, at = max(gaps)
    return covered / win, gap / NS_PER_S, at


def _counter(
    te: np.ndarray,
    e: np.ndarray,
    wrap: np.ndarray,
    epoch: np.ndarray,
    tp: np.ndarray,
    p: np.ndarray,
    start_ns: int,
    end_ns: int,
    out: DeviceEnergy,
) -> float | None:
    """Counter difference over the window with wraps/resets corrected; None if impossible."""
    if len(te) < 2 or te[0] >= end_ns or te[-1] <= start_ns:
        return None
    d = np.diff(e)
    restart = np.diff(epoch) != 0
    for i in np.nonzero((d < 0) | restart)[0]:
        lo, hi = te[i], te[i + 1]
        if hi <= start_ns or lo >= end_ns:
            d[i] = 0.0
            continue
        if not restart[i] and np.isfinite(wrap[i + 1]) and wrap[i + 1] > 0 and e[i] <= wrap[i + 1]:
            d[i] += wrap[i + 1]
            out.wraps += 1
        else:
            out.resets += 1
            fill = _trapz(tp, p, int(lo), int(hi)) if len(tp) >= 2 else 0.0
            d[i] = fill
            out.warnings.append(
                f"device {out.device}: counter "
                + ("restart (generation change)" if restart[i] else "reset (decrease)")
                + f" at {ns_to_iso(int(hi))} (t_ns={int(hi)}); "
                + (
                    f"interval filled with {fill:.3f} J from power"
                    if fill
                    else "interval counted as 0 J"
                )
            )
    c = np.concatenate(([0.0], np.cumsum(d)))
    a, b = max(start_ns, int(te[0])), min(end_ns, int(te[-1]))
    return float(np.interp(b, te, c) - np.interp(a, te, c))


def _fill_counter_edges(
    out: DeviceEnergy, te: np.ndarray, tp: np.ndarray, p: np.ndarray, start_ns: int, end_ns: int
) -> None:
    """Add the power trapezoid where the window has power readings but no counter reading
    (before the first / after the last counter reading, e.g. a poll cut mid-block), warned."""
    for lo, hi in ((start_ns, int(te[0])), (int(te[-1]), end_ns)):
        fill = _trapz(tp, p, lo, hi) if hi > lo else 0.0
        if fill:
            assert out.counter_j is not None
            out.counter_j += fill
            out.warnings.append(
                f"device {out.device}: no counter reading from {ns_to_iso(max(lo, int(tp[0])))} "
                f"to {ns_to_iso(min(hi, int(tp[-1])))}; {fill:.3f} J from power added"
            )


def device_energy(
    device: str,
    samples: Sequence[Sample],
    start_ns: int,
    end_ns: int,
    nominal_interval_s: float | None = None,
    gap_factor: float = GAP_FACTOR,
    max_plausible_w: float = MAX_PLAUSIBLE_W,
) -> DeviceEnergy:
    """Energy of ``device`` over ``[start_ns, end_ns]`` from its ``samples`` (any order).

    nominal_interval_s: the log's poll cadence (s); gaps over ``gap_factor`` times it are
    uncovered. max_plausible_w: mean power (W) above which the result is warned about.
    """
    s = sorted((x for x in samples if x.device == device), key=lambda x: x.t_ns)
    out = DeviceEnergy(device, 0.0, "none", window_s=(end_ns - start_ns) / NS_PER_S)
    es = [x for x in s if x.energy_j is not None]
    ps = [x for x in s if x.power_w is not None]
    te = np.array([x.t_ns for x in es], dtype=np.int64)
    e = np.array([x.energy_j for x in es], dtype=np.float64)
    wrap = np.array([x.wrap_j if x.wrap_j is not None else np.nan for x in es], dtype=np.float64)
    epoch = np.array([x.epoch for x in es], dtype=np.int64)
    tp = np.array([x.t_ns for x in ps], dtype=np.int64)
    p = np.array([x.power_w for x in ps], dtype=np.float64)
    times = np.array([x.t_ns for x in s], dtype=np.int64)
    out.samples = int(np.sum((times >= start_ns) & (times <= end_ns)))
    ut = np.unique(times)
    if nominal_interval_s:
        nominal_ns = nominal_interval_s * NS_PER_S
    elif len(ut) >= 2:
        nominal_ns = float(np.median(np.diff(ut)))
    else:
        nominal_ns = 0.0
    max_gap_ns = gap_factor * nominal_ns
    out.gap_threshold_s = max_gap_ns / NS_PER_S
    out.coverage, out.max_gap_s, out.max_gap_at_ns = coverage(times, start_ns, end_ns, max_gap_ns)
    # a trapezoid needs readings on both sides of some instant of the window: readings that
    # all lie before it, after it, or only touch its edge measure nothing (not 0 J)
    if len(tp) >= 2 and tp[0] < end_ns and tp[-1] > start_ns:
        out.integration_j = _trapz(tp, p, start_ns, end_ns)
    out.counter_j = _counter(te, e, wrap, epoch, tp, p, start_ns, end_ns, out)
    if out.counter_j is not None and len(tp) >= 2:
        _fill_counter_edges(out, te, tp, p, start_ns, end_ns)
    if (
        out.counter_j == 0.0
        and out.integration_j
        and out.integration_j / max(out.window_s, 1e-9) > STUCK_POWER_W
    ):
        out.stuck = True
        out.warnings.append(
            f"device {device}: energy counter stuck over the window while power is "
            f"{out.integration_j / out.window_s:.1f} W; using the power trapezoid"
        )
    if out.counter_j is not None and not out.stuck:
        out.energy_j, out.method = out.counter_j, "counter"
    elif out.integration_j is not None:
        out.energy_j, out.method = out.integration_j, "integration"
    if out.counter_j and out.integration_j is not None and not out.stuck:
        out.rel_diff = (out.integration_j - out.counter_j) / out.counter_j
        if abs(out.rel_diff) > DISAGREEMENT_WARN:
            out.warnings.append(
                f"device {device}: counter ({out.counter_j:.3f} J) and power integration "
                f"({out.integration_j:.3f} J) disagree by {100 * out.rel_diff:+.1f} %"
            )
    if out.method == "none":
        span = (
            f"its readings are from {ns_to_iso(int(times.min()))} to {ns_to_iso(int(times.max()))}"
            if len(times)
            else "it has no readings"
        )
        out.warnings.append(
            f"device {device}: no usable samples in the window {ns_to_iso(start_ns)} to "
            f"{ns_to_iso(end_ns)} ({span}): not measured"
        )
    elif out.coverage < COVERAGE_FULL:
        out.warnings.append(
            f"device {device}: samples cover {100 * out.coverage:.1f} % of the window "
            f"(largest gap {out.max_gap_s:.3f} s from {ns_to_iso(out.max_gap_at_ns)}; "
            f"gaps over {out.gap_threshold_s:.3f} s = {gap_factor} x the poll interval count as "
            "uncovered); the energy across gaps is bridged"
        )
    mp = out.mean_power_w
    if mp is not None and (mp < -1e-9 or mp > max_plausible_w):
        out.warnings.append(f"device {device}: implausible mean power {mp:.1f} W")
    return out
