"""The per-run energy table from measured logs (counter / integration).

:func:`measured_report` turns logs and windows into the ``energy.json`` dictionary. Two
figures per node are kept apart and never added:

- ``per_node_j`` (*devices only*): the counted GPU packages of the node (rocm-smi, amd-smi,
  NVML, nvidia-smi), or its counted Cray ``accel<k>`` counters when no GPU log exists for the
  node (then the accelerators are the devices), or RAPL zones on CPU nodes; ``total_j`` is
  their sum;
- ``per_node_whole_j`` (*whole node*, Cray pm_counters ``energy``: CPU, memory,
  accelerators and the rest of the node), with ``per_node_parts_j`` (``cpu``, ``memory``,
  ``accel<k>``, ``node``); ``whole_node_total_j`` is their sum.

The model used without a sensor is :mod:`.model`; writing the files is :mod:`.table`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .measure import PM_FORMAT, LogEnergy, LogInput, measure_log
from .model import DEFAULT_BUSY_W, DEFAULT_IDLE_W, model_report, per_unit
from .table import CSV_COLUMNS, write_report
from .windows import Windows
from .work import Work

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_BUSY_W",
    "DEFAULT_IDLE_W",
    "LogInput",
    "Measured",
    "Work",
    "measure_logs",
    "measured_report",
    "model_report",
    "write_report",
]


@dataclass
class Measured:
    """What the logs gave: the measured ``report`` (``None`` when no counted device has a
    usable reading in the windows), and, either way, ``logs`` (per-log info, as in
    ``energy.json``), ``log_warnings`` (the logs' own warnings, each naming its file) and
    ``unusable`` (file -> why it gave no energy)."""

    report: dict[str, Any] | None
    logs: dict[str, Any] = field(default_factory=dict)
    log_warnings: list[str] = field(default_factory=list)
    unusable: dict[str, str] = field(default_factory=dict)


def measured_report(
    logs: list[LogInput],
    windows: Windows,
    work: Work,
    used_per_host: dict[str, set[str]] | None = None,
    extra_warnings: list[str] | None = None,
) -> dict[str, Any] | None:
    """Energy from measured logs, or ``None`` when no log has a usable sample in the windows
    (:func:`measure_logs` says why)."""
    return measure_logs(logs, windows, work, used_per_host, extra_warnings).report


def measure_logs(
    logs: list[LogInput],
    windows: Windows,
    work: Work,
    used_per_host: dict[str, set[str]] | None = None,
    extra_warnings: list[str] | None = None,
) -> Measured:
    """Energy (J) from measured logs over ``windows`` and why each unusable log gave none.

    used_per_host: devices the run used per host (``None``: all devices count).
    """
    warnings = list(windows.warnings) + list(extra_warnings or [])
    log_warnings: list[str] = []
    per_node: dict[str, float] = defaultdict(float)
    whole: dict[str, float] = {}
    parts: dict[str, dict[str, float]] = {}
    per_epoch: dict[int, float] = defaultdict(float)
    devices: list[dict[str, Any]] = []
    counted_all = []
    gcds: dict[str, dict[str, int]] = {}
    log_info: dict[str, Any] = {}
    sources = set()
    gpu_hosts: set[str] = set()
    measured: list[tuple[LogInput, LogEnergy]] = [
        (log, measure_log(log, windows, used_per_host.get(log.host) if used_per_host else None))
        for log in logs
    ]
    # Cray pm_counters logs last, so a node's GPU log (if any) gives its devices-only J
    measured.sort(key=lambda x: x[1].fmt == PM_FORMAT)
    for log, le in measured:
        log_info[str(log.path)] = le.info
        log_warnings += le.warnings
        if le.node is None:
            continue
        sources.add(log.source or le.fmt)
        if le.fmt == PM_FORMAT:
            if le.whole_node_j is not None:
                whole[log.host] = whole.get(log.host, 0.0) + le.whole_node_j
            parts[log.host] = le.parts_j
            if log.host in gpu_hosts:  # the GPU log already gave the devices-only figure
                for row in le.rows:
                    if row["role"] == "accelerator":
                        row["role"], row["counted"] = "accelerator (cross-check)", False
                devices += le.rows
                continue
        elif le.is_gpu:
            gpu_hosts.add(log.host)
            gcds[log.host] = le.node.gcds_used_per_package()
        per_node[log.host] += le.node.energy_j
        for ep, e in le.per_epoch.items():
            per_epoch[ep] += e
        devices += le.rows
        counted_all += le.counted
    unusable = {p: i["unusable"] for p, i in log_info.items() if i.get("unusable")}
    warnings += log_warnings
    if all(d.method == "none" for d in counted_all):
        # no counted device has a reading in the windows: the caller models (or fails)
        return Measured(None, log_info, log_warnings, unusable)
    flagged = [f"{d['host']}/{d['device']}" for d in devices if d.get("flagged")]
    unmeasured = [
        f"{d['host']}/{d['device']}" for d in devices if d["counted"] and d["method"] == "none"
    ]
    if unmeasured:
        warnings.append(
            f"total_j leaves out {len(unmeasured)} counted device(s) with no usable reading "
            f"in the window (neither measured nor modelled): {', '.join(unmeasured)}"
        )
    total = sum(per_node.values())
    rated = [d for d in counted_all if d.rel_diff is not None]
    counter_sum = sum(d.counter_j or 0.0 for d in rated)
    integ_sum = sum(d.integration_j or 0.0 for d in rated)
    methods = {d.method for d in counted_all if d.method != "none"}
    jps, jpst = per_unit(total, work)
    report = {
        "method": "counter" if methods == {"counter"} else "integration",
        "source": ",".join(sorted(sources)),
        "total_j": total,
        "per_node_j": dict(per_node),
        "whole_node_total_j": sum(whole.values()) if whole else None,
        "per_node_whole_j": whole,
        "per_node_parts_j": parts,
        "per_device_j": {f"{d['host']}/{d['device']}": d["energy_j"] for d in devices},
        "per_epoch_j": {str(k): v for k, v in sorted(per_epoch.items())},
        "j_per_sample": jps,
        "j_per_step": jpst,
        "mean_power_w": total / windows.total_s if windows.total_s else None,
        "window_s": windows.total_s,
        "windows_ns": [list(w) for w in windows.measured],
        "coverage": min(d.coverage for d in counted_all),
        "max_gap_s": max(d.max_gap_s for d in counted_all),
        "counter_vs_integration_rel_diff": (integ_sum - counter_sum) / counter_sum
        if counter_sum
        else None,
        "gcds_used_per_package": gcds,
        "flagged_devices": flagged,
        "unmeasured_devices": unmeasured,
        "steps": work.steps,
        "samples": work.samples,
        "devices": devices,
        "logs": log_info,
        "warnings": warnings,
    }
    return Measured(report, log_info, log_warnings, unusable)
