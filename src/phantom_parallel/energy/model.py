"""The documented power model, used when no sensor exists (CI, CPU-only machines).

:func:`model_report` returns the same fields as the measured report, with ``method: model``.
"""

from __future__ import annotations

from typing import Any

from .windows import Windows
from .work import Work

#: Power model defaults (W per device) when neither flags nor config give them.
DEFAULT_BUSY_W = 100.0
DEFAULT_IDLE_W = 0.0


def per_unit(total: float, work: Work) -> tuple[float | None, float | None]:
    """(J per sample, J per step) of ``total`` J."""
    jps = total / work.samples if work.samples else None
    jpst = total / work.steps if work.steps else None
    return jps, jpst


def model_report(
    windows: Windows,
    work: Work,
    busy_w: float | None,
    idle_w: float | None,
    reason: str,
    hosts: list[str] | None = None,
    logs: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Modelled energy (J): ``busy_w`` (W) x window length (s) per device, devices = world size.

    ``idle_w`` x (run span - measured windows) per device is reported separately as
    ``model_idle_outside_window_j`` and not included in ``total_j``. ``logs``: per-log info
    of the power logs that gave no energy (``energy.json`` ``logs``); ``notes``: their
    warnings, listed right after the MODELLED one.
    """
    warnings = [*windows.warnings, f"energy is MODELLED, not measured: {reason}", *(notes or [])]
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
    jps, jpst = per_unit(total, work)
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
        "logs": dict(logs or {}),
        "warnings": warnings,
    }
