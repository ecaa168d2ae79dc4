"""The per-run energy table: measured (counter / integration) or modelled.

:func:`measured_report` turns parsed logs and windows into the ``energy.json`` dictionary;
:func:`model_report` is the documented power model used when no sensor exists. Both return
the same fields; :func:`write_report` writes ``energy.json`` and the tidy ``energy.csv``.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .attribution import attribute, secondary_devices
from .formats import parse
from .integrate import DeviceEnergy, device_energy
from .records import ParseResult
from .windows import Windows

#: Power model defaults (W per device) when neither flags nor config give them.
DEFAULT_BUSY_W = 100.0
DEFAULT_IDLE_W = 0.0
GPU_FORMATS = ("rocm-smi", "amd-smi", "nvidia-smi", "nvml")
MAX_ISSUES_LISTED = 20


@dataclass
class LogInput:
    """One raw power log of one node."""

    host: str
    path: Path
    fmt: str = "auto"
    source: str = ""
    interval_s: float | None = None


@dataclass
class Work:
    """What the energy is divided by: steps and samples in the measured windows."""

    steps: int | None = None
    samples: float | None = None
    world_size: int | None = None
    devices_per_host: int | None = None


def _combine(device: str, parts: list[DeviceEnergy]) -> DeviceEnergy:
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


def _issues_summary(r: ParseResult) -> dict[str, Any]:
    return {
        "format": r.fmt,
        "polls": r.polls,
        "lost_polls": r.lost_polls,
        "samples": len(r.samples),
        "issue_counts": r.counts(),
        "issues": [str(i) for i in r.issues[:MAX_ISSUES_LISTED]],
    }


def _per_unit(total: float, work: Work) -> tuple[float | None, float | None]:
    jps = total / work.samples if work.samples else None
    jpst = total / work.steps if work.steps else None
    return jps, jpst


def measured_report(
    logs: list[LogInput],
    windows: Windows,
    work: Work,
    used_per_host: dict[str, set[str]] | None = None,
) -> dict[str, Any] | None:
    """Energy from measured logs, or ``None`` when no log has a usable sample in the windows."""
    warnings = list(windows.warnings)
    per_node: dict[str, float] = defaultdict(float)
    per_epoch: dict[int, float] = defaultdict(float)
    devices: list[dict[str, Any]] = []
    combined_all: list[DeviceEnergy] = []
    gcds: dict[str, dict[str, int]] = {}
    log_info: dict[str, Any] = {}
    sources = set()
    for log in logs:
        result = parse(log.path, log.fmt)
        log_info[str(log.path)] = _issues_summary(result)
        if result.issues:
            warnings.append(
                f"{log.path}: {len(result.issues)} non-data lines {result.counts()}, "
                f"first: {result.issues[0]}"
            )
        if not result.samples:
            continue
        sources.add(log.source or result.fmt)
        is_gpu = result.fmt.startswith(GPU_FORMATS)
        secondaries = (
            secondary_devices(result.samples) if result.fmt.startswith(("rocm", "amd")) else set()
        )
        by_dev: dict[str, list] = defaultdict(list)
        for s in result.samples:
            by_dev[s.device].append(s)
        energies: dict[str, float] = {}
        per_dev: dict[str, DeviceEnergy] = {}
        for dev, ss in by_dev.items():
            if dev in secondaries:
                continue
            parts = [device_energy(dev, ss, a, b, log.interval_s) for a, b in windows.measured]
            de = _combine(dev, parts)
            per_dev[dev] = de
            energies[dev] = de.energy_j
        used = used_per_host.get(log.host) if (used_per_host and is_gpu) else None
        node = attribute(log.host, energies, secondaries, used)
        warnings += node.warnings
        per_node[log.host] += node.energy_j
        if secondaries or is_gpu:
            gcds[log.host] = node.gcds_used_per_package()
        counted = {p.primary for p in node.packages if p.used}
        for dev, de in per_dev.items():
            warnings += de.warnings
            if dev in counted:
                combined_all.append(de)
            devices.append(
                {
                    "host": log.host,
                    "device": dev,
                    "source": log.source or result.fmt,
                    "role": "primary"
                    if any(dev == p.primary and len(p.devices) > 1 for p in node.packages)
                    else "device",
                    "counted": dev in counted,
                    "energy_j": de.energy_j,
                    "method": de.method,
                    "counter_j": de.counter_j,
                    "integration_j": de.integration_j,
                    "rel_diff": de.rel_diff,
                    "mean_power_w": de.mean_power_w,
                    "coverage": de.coverage,
                    "max_gap_s": de.max_gap_s,
                    "samples": de.samples,
                    "resets": de.resets,
                    "wraps": de.wraps,
                    "stuck": de.stuck,
                }
            )
        for dev in sorted(secondaries):
            devices.append(
                {
                    "host": log.host,
                    "device": dev,
                    "source": log.source or result.fmt,
                    "role": "secondary",
                    "counted": False,
                    "energy_j": 0.0,
                    "method": "included-in-primary",
                }
            )
        for ep, wins in windows.epochs.items():
            ep_e = {
                d: sum(device_energy(d, by_dev[d], a, b, log.interval_s).energy_j for a, b in wins)
                for d in per_dev
            }
            per_epoch[ep] += attribute(log.host, ep_e, secondaries, used).energy_j
    if not combined_all:
        return None
    total = sum(per_node.values())
    counter_sum = sum(d.counter_j or 0.0 for d in combined_all if d.rel_diff is not None)
    integ_sum = sum(d.integration_j or 0.0 for d in combined_all if d.rel_diff is not None)
    methods = {d.method for d in combined_all}
    jps, jpst = _per_unit(total, work)
    return {
        "method": "counter" if methods == {"counter"} else "integration",
        "source": ",".join(sorted(sources)),
        "total_j": total,
        "per_node_j": dict(per_node),
        "per_device_j": {f"{d['host']}/{d['device']}": d["energy_j"] for d in devices},
        "per_epoch_j": {str(k): v for k, v in sorted(per_epoch.items())},
        "j_per_sample": jps,
        "j_per_step": jpst,
        "mean_power_w": total / windows.total_s if windows.total_s else None,
        "window_s": windows.total_s,
        "windows_ns": [list(w) for w in windows.measured],
        "coverage": min(d.coverage for d in combined_all),
        "max_gap_s": max(d.max_gap_s for d in combined_all),
        "counter_vs_integration_rel_diff": (integ_sum - counter_sum) / counter_sum
        if counter_sum
        else None,
        "gcds_used_per_package": gcds,
        "steps": work.steps,
        "samples": work.samples,
        "devices": devices,
        "logs": log_info,
        "warnings": warnings,
    }


def model_report(
    windows: Windows,
    work: Work,
    busy_w: float | None,
    idle_w: float | None,
    reason: str,
    hosts: list[str] | None = None,
) -> dict[str, Any]:
    """Modelled energy: ``busy_w`` x window length per device, devices = world size.

    ``idle_w`` x (run span - measured windows) per device is reported separately as
    ``model_idle_outside_window_j`` and not included in ``total_j``.
    """
    warnings = [*windows.warnings, f"energy is MODELLED, not measured: {reason}"]
    if busy_w is None:
        busy_w = DEFAULT_BUSY_W
        warnings.append(f"no busy power given: default {DEFAULT_BUSY_W} W per device")
    idle_w = DEFAULT_IDLE_W if idle_w is None else idle_w
    n = work.world_size or 1
    hosts = hosts or ["localhost"]
    per_host = [n // len(hosts) + (1 if i < n % len(hosts) else 0) for i in range(len(hosts))]
    total = busy_w * windows.total_s * n
    span = (
        (windows.run_span[1] - windows.run_span[0]) / 1e9 if windows.run_span else windows.total_s
    )
    per_device = {
        f"{h}/{i}": busy_w * windows.total_s
        for h, k in zip(hosts, per_host, strict=True)
        for i in range(k)
    }
    jps, jpst = _per_unit(total, work)
    return {
        "method": "model",
        "source": "model",
        "model": {"busy_w_per_device": busy_w, "idle_w_per_device": idle_w, "devices": n},
        "total_j": total,
        "per_node_j": {
            h: busy_w * windows.total_s * k for h, k in zip(hosts, per_host, strict=True)
        },
        "per_device_j": per_device,
        "per_epoch_j": {
            str(ep): busy_w * n * sum(b - a for a, b in wins) / 1e9
            for ep, wins in sorted(windows.epochs.items())
        },
        "j_per_sample": jps,
        "j_per_step": jpst,
        "mean_power_w": busy_w * n,
        "window_s": windows.total_s,
        "windows_ns": [list(w) for w in windows.measured],
        "coverage": None,
        "max_gap_s": None,
        "counter_vs_integration_rel_diff": None,
        "model_idle_outside_window_j": idle_w * n * max(0.0, span - windows.total_s),
        "gcds_used_per_package": {},
        "steps": work.steps,
        "samples": work.samples,
        "devices": [
            {
                "host": k.split("/")[0],
                "device": k.split("/")[1],
                "source": "model",
                "role": "device",
                "counted": True,
                "energy_j": v,
                "method": "model",
                "mean_power_w": busy_w,
            }
            for k, v in per_device.items()
        ],
        "logs": {},
        "warnings": warnings,
    }


CSV_COLUMNS = (
    "scope",
    "host",
    "device",
    "role",
    "counted",
    "method",
    "source",
    "energy_j",
    "counter_j",
    "integration_j",
    "rel_diff",
    "mean_power_w",
    "window_s",
    "coverage",
    "max_gap_s",
    "samples",
)


def write_report(
    report: dict[str, Any], out_dir: str | Path, stem: str = "energy"
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and the tidy ``<stem>.csv`` (one row per device, node, epoch, total)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, cpath = out / f"{stem}.json", out / f"{stem}.csv"
    jpath.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    method, source = report["method"], report["source"]
    rows: list[dict[str, Any]] = []
    for d in report["devices"]:
        rows.append(
            {
                "scope": "device",
                "window_s": report["window_s"],
                **{k: d.get(k) for k in CSV_COLUMNS if k in d},
            }
        )
    for host, e in report["per_node_j"].items():
        rows.append(
            {"scope": "node", "host": host, "energy_j": e, "method": method, "source": source}
        )
    for ep, e in report["per_epoch_j"].items():
        rows.append(
            {
                "scope": "epoch",
                "device": f"epoch {ep}",
                "energy_j": e,
                "method": method,
                "source": source,
            }
        )
    rows.append(
        {
            "scope": "total",
            "energy_j": report["total_j"],
            "method": method,
            "source": source,
            "mean_power_w": report["mean_power_w"],
            "window_s": report["window_s"],
            "coverage": report["coverage"],
            "max_gap_s": report["max_gap_s"],
            "rel_diff": report["counter_vs_integration_rel_diff"],
        }
    )
    with open(cpath, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in CSV_COLUMNS})
    return jpath, cpath
