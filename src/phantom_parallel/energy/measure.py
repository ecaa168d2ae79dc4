"""Energy of one node's log over the measured windows: parse, account polls, integrate,
attribute. :func:`measure_log` returns a :class:`LogEnergy`; :mod:`.report` sums them.

Energies in J, times in ns since the epoch, cadence in s.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .attribution import NodeAttribution, attribute, attribute_pm, secondary_devices
from .formats import FormatError, parse
from .integrate import MAX_PLAUSIBLE_NODE_W, MAX_PLAUSIBLE_W, DeviceEnergy, device_energy
from .polls import account, cadence_s, drop_zero_runs, expected_devices
from .records import ParseResult, Sample
from .timestamps import ns_to_iso
from .windows import Windows

GPU_FORMATS = ("rocm-smi", "amd-smi", "nvidia-smi", "nvml")
PM_FORMAT = "pm-counters"
MAX_ISSUES_LISTED = 20
#: Role of each pm_counters device in the energy table.
PM_ROLES = {"node": "node", "cpu": "cpu", "memory": "memory"}


@dataclass
class LogInput:
    """One raw power log of one node.

    interval_s: the poll interval given by the user (``--interval``): it sets the gap threshold.
    min_interval_s: the sampler's requested interval: a floor under the log's own cadence.
    bus_ids: device label -> PCI bus id of the devices the sampler read.
    """

    host: str
    path: Path
    fmt: str = "auto"
    source: str = ""
    interval_s: float | None = None
    min_interval_s: float | None = None
    bus_ids: dict[str, str] = field(default_factory=dict)


@dataclass
class LogEnergy:
    """What one log contributes: devices-only node energy, whole-node energy (pm_counters),
    device rows for ``energy.json``, counted device energies, per-epoch J, warnings."""

    host: str
    fmt: str
    info: dict[str, Any]
    node: NodeAttribution | None = None
    whole_node_j: float | None = None
    parts_j: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    counted: list[DeviceEnergy] = field(default_factory=list)
    per_epoch: dict[int, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        return self.fmt.startswith(GPU_FORMATS)


def combine(device: str, parts: list[DeviceEnergy]) -> DeviceEnergy:
    """One device's energy over several windows (sums; coverage weighted by window length)."""
    total_s = sum(p.window_s for p in parts)
    out = DeviceEnergy(device, sum(p.energy_j for p in parts), "none", window_s=total_s)
    methods = {p.method for p in parts}
    out.method = (
        "counter" if methods == {"counter"} else ("none" if methods == {"none"} else "integration")
    )
    if all(p.counter_j is not None for p in parts):
        out.counter_j = sum(p.counter_j for p in parts)  # type: ignore[misc]
    if all(p.integration_j is not None for p in parts):
        out.integration_j = sum(p.integration_j for p in parts)  # type: ignore[misc]
    if out.counter_j and out.integration_j is not None and not any(p.stuck for p in parts):
        out.rel_diff = (out.integration_j - out.counter_j) / out.counter_j
    out.coverage = sum(p.coverage * p.window_s for p in parts) / total_s if total_s else 0.0
    out.max_gap_s = max((p.max_gap_s for p in parts), default=0.0)
    out.samples = sum(p.samples for p in parts)
    out.resets = sum(p.resets for p in parts)
    out.wraps = sum(p.wraps for p in parts)
    out.stuck = any(p.stuck for p in parts)
    out.warnings = [w for p in parts for w in p.warnings]
    return out


def _summary(r: ParseResult) -> dict[str, Any]:
    return {
        "format": r.fmt,
        "polls": r.polls,
        "lost_polls": r.lost_polls,
        "samples": len(r.samples),
        "issue_counts": r.counts(),
        "issues": [str(i) for i in r.issues[:MAX_ISSUES_LISTED]],
    }


def _role(fmt: str, dev: str, node: NodeAttribution) -> str:
    if fmt == PM_FORMAT:
        return PM_ROLES.get(dev, "accelerator")
    if any(dev == p.primary and len(p.devices) > 1 for p in node.packages):
        return "primary"
    return "device"


def _unusable(out: LogEnergy, path: str, why: str) -> LogEnergy:
    """Mark ``out`` as a log that gives no energy: ``info["unusable"]`` and a warning
    ``<file>: skipped: <why>``."""
    why = why.replace("\n", " ")
    out.info["unusable"] = why
    out.warnings.append(f"{path}: skipped: {why}")
    return out


def _read(log: LogInput) -> ParseResult | str:
    """The parsed log, or why it cannot be read (empty, missing, format unknown)."""
    path = str(log.path)
    try:
        if log.path.stat().st_size == 0:
            return "empty file (0 bytes)"
        return parse(log.path, log.fmt)
    except FormatError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"


def _span(times: list[int], windows: Windows) -> str:
    """``readings from A to B, window(s) from C to D`` (ISO 8601, UTC)."""
    w0, w1 = windows.measured[0][0], windows.measured[-1][1]
    seen = f"from {ns_to_iso(min(times))} to {ns_to_iso(max(times))}" if times else "none"
    return f"readings {seen}, measured window(s) from {ns_to_iso(w0)} to {ns_to_iso(w1)}"


def measure_log(log: LogInput, windows: Windows, used: set[str] | None) -> LogEnergy:
    """Energy of ``log`` over ``windows.measured``; ``used``: devices the run used on this
    host (GPU labels; ``None``: all count). A log that gives no energy (unreadable, empty, no
    readings, no reading inside the windows) is named in a warning and in
    ``info["unusable"]``, never an error."""
    path = str(log.path)
    result = _read(log)
    if isinstance(result, str):
        return _unusable(LogEnergy(log.host, "", {"format": log.fmt}), path, result)
    out = LogEnergy(log.host, result.fmt, _summary(result), warnings=list(result.warnings))
    if not result.samples and not result.records:
        first = f"; first: {result.issues[0]}" if result.issues else ""
        return _unusable(
            out,
            path,
            f"no readings as {result.fmt} ({len(result.issues)} non-data lines "
            f"{result.counts()}{first})",
        )
    if result.issues:
        out.warnings.append(
            f"{path}: {len(result.issues)} non-data lines {result.counts()}, "
            f"first: {result.issues[0]}"
        )
    cut = [i for i in result.issues if i.kind == "truncated"]
    if cut and cut[0] is not result.issues[0]:  # the first issue is already in a warning
        out.warnings.append(str(cut[0]))
    out.warnings += [str(i) for i in cut[1:3]]
    secondaries = (
        secondary_devices(result.samples) if result.fmt.startswith(("rocm", "amd")) else set()
    )
    samples, zeros = drop_zero_runs(result.samples, secondaries)
    expected = expected_devices(result, secondaries)
    cadence = cadence_s(result, log.interval_s, log.min_interval_s)
    polls = account(result, expected, windows.measured, zeros)
    out.info["cadence_s"] = cadence
    out.info["expected_devices"] = sorted(expected)
    by_dev: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_dev[s.device].append(s)
    per_dev: dict[str, DeviceEnergy] = {}
    for dev in sorted(expected - secondaries):
        limit = MAX_PLAUSIBLE_NODE_W if dev in PM_ROLES else MAX_PLAUSIBLE_W
        parts = [
            device_energy(dev, by_dev[dev], a, b, cadence, max_plausible_w=limit)
            for a, b in windows.measured
        ]
        per_dev[dev] = combine(dev, parts)
    if all(de.method == "none" for de in per_dev.values()):
        _unusable(
            out,
            path,
            "no usable reading inside the measured window(s) "
            f"({_span([x.t_ns for x in samples], windows)})",
        )
    energies = {d: de.energy_j for d, de in per_dev.items()}
    gpu_used = used if result.fmt.startswith(GPU_FORMATS) else None
    if result.fmt == PM_FORMAT:
        node = attribute_pm(log.host, energies, used)
        out.whole_node_j = energies.get("node")
        out.parts_j = {d: e for d, e in energies.items()}
    else:
        node = attribute(log.host, energies, secondaries, gpu_used)
    out.node = node
    out.warnings += node.warnings
    counted = {p.primary for p in node.packages if p.used}
    for dev, de in per_dev.items():
        dp = polls[dev]
        flagged = bool(de.warnings or dp.lost or dp.partial)
        out.warnings += [f"{log.host}: {w}" for w in de.warnings]
        out.warnings += dp.warnings(log.host, path)
        if dev in counted:
            out.counted.append(de)
        out.rows.append(
            {
                "host": log.host,
                "device": dev,
                "pci_bus_id": log.bus_ids.get(dev) or result.bus_ids.get(dev),
                "source": log.source or result.fmt,
                "role": _role(result.fmt, dev, node),
                "counted": dev in counted,
                "energy_j": de.energy_j,
                "method": de.method,
                "counter_j": de.counter_j,
                "integration_j": de.integration_j,
                "rel_diff": de.rel_diff,
                "mean_power_w": de.mean_power_w,
                "coverage": de.coverage,
                "max_gap_s": de.max_gap_s,
                "cadence_s": cadence,
                "samples": de.samples,
                "resets": de.resets,
                "wraps": de.wraps,
                "stuck": de.stuck,
                "flagged": flagged,
                **dp.as_dict(path),
            }
        )
    for dev in sorted(secondaries):
        out.rows.append(
            {
                "host": log.host,
                "device": dev,
                "pci_bus_id": log.bus_ids.get(dev) or result.bus_ids.get(dev),
                "source": log.source or result.fmt,
                "role": "secondary",
                "counted": False,
                "energy_j": 0.0,
                "method": "included-in-primary",
                "flagged": False,
                **polls[dev].as_dict(path),
            }
        )
    for ep, wins in windows.epochs.items():
        ep_e = {
            d: sum(device_energy(d, by_dev[d], a, b, cadence).energy_j for a, b in wins)
            for d in per_dev
        }
        if result.fmt == PM_FORMAT:
            out.per_epoch[ep] = attribute_pm(log.host, ep_e, used).energy_j
        else:
            out.per_epoch[ep] = attribute(log.host, ep_e, secondaries, gpu_used).energy_j
    return out
