"""A run folder's energy: its power logs (``power/``), the work done in its measured windows
(``metrics.csv``, ``manifest.json``) and :func:`extract`, the report ``phantom-energy extract``
writes (measured when a log has samples in the window, else the documented power model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .ranks import used_devices
from .report import LogInput, Work, measured_report, model_report
from .windows import Windows, windows_from_file


class InputError(ValueError):
    """Bad input to the CLI (the message names the file)."""


def _short(host: str) -> str:
    return host.split(".")[0]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def run_logs(power_dir: Path) -> list[LogInput]:
    """Logs of a run's ``power/`` folder: from ``*.sampler.json``, else ``*.log`` sniffed."""
    logs: list[LogInput] = []
    seen: set[Path] = set()
    for meta_path in sorted(power_dir.glob("*.sampler.json")):
        meta = _load_json(meta_path)
        if not meta.get("log"):
            continue
        path = power_dir / meta["log"]
        seen.add(path)
        if path.exists():
            logs.append(
                LogInput(
                    meta.get("host") or meta_path.name.split(".")[0],
                    path,
                    meta.get("log_format") or "auto",
                    meta.get("source", ""),
                    None,
                    meta.get("interval_s"),
                    dict(meta.get("device_bus_ids") or {}),
                )
            )
    for path in sorted(power_dir.glob("*.log")):
        if path not in seen:
            logs.append(LogInput(path.name.split(".")[0], path))
    return logs


def work_done(run_dir: Path, manifest: dict[str, Any], windows: Windows) -> Work:
    """Steps and samples of ``run_dir/metrics.csv`` inside the measured windows (none when the
    run wrote no metrics); :class:`InputError` naming the file and line of a bad row."""
    cfg = manifest.get("config") or {}
    ws = manifest.get("world_size") or cfg.get("world_size")
    work = Work(world_size=int(ws) if ws else None)
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        return work
    steps, samples = 0, 0.0
    with open(metrics, newline="", encoding="utf-8") as f:
        for no, row in enumerate(csv.DictReader(f), 2):
            try:
                t = int(float(row["t_ns"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{metrics}:{no}: bad t_ns ({exc})") from exc
            if any(a <= t <= b for a, b in windows.measured):
                steps += 1
                try:
                    samples += float(row.get("samples_per_s") or 0) * float(
                        row.get("step_time_s") or 0
                    )
                except ValueError as exc:
                    raise InputError(f"{metrics}:{no}: {exc}") from exc
    work.steps = steps
    bs = cfg.get("batch_size")
    work.samples = float(bs) * steps if bs else (samples or None)
    return work


def _watts(arg: float | None, cfg: dict[str, Any], key: str) -> float | None:
    """The power model's W per device: the flag, else the run config's ``energy.KEY``."""
    if arg is not None:
        return arg
    energy_cfg = cfg.get("energy") if isinstance(cfg.get("energy"), dict) else {}
    v = energy_cfg.get(key, cfg.get(f"energy_{key}"))
    return float(v) if v is not None else None


def extract(run_dir: Path, busy_w: float | None, idle_w: float | None) -> dict[str, Any]:
    """Energy report of a run folder (measured if any log has samples, else modelled)."""
    events = run_dir / "events.jsonl"
    if not events.exists():
        raise InputError(f"{events}: missing (the run's events file is the energy clock)")
    windows = windows_from_file(events)
    manifest_path = run_dir / "manifest.json"
    manifest = _load_json(manifest_path) if manifest_path.exists() else {}
    cfg = manifest.get("config") or {}
    work = work_done(run_dir, manifest, windows)
    logs = run_logs(run_dir / "power") if (run_dir / "power").is_dir() else []
    used = used_devices(manifest, logs)
    report = measured_report(logs, windows, work, used.per_host, used.warnings) if logs else None
    if report is not None:
        report["device_attribution"] = {"method": used.method, "ranks_per_device": used.ranks}
    if report is None:
        reason = "no power log with samples in the measured window" if logs else "no power logs"
        hosts = list(dict.fromkeys(_short(str(h)) for h in manifest.get("hosts") or [])) or None
        report = model_report(
            windows,
            work,
            _watts(busy_w, cfg, "busy_watts"),
            _watts(idle_w, cfg, "idle_watts"),
            reason,
            hosts,
        )
    report["run_dir"] = str(run_dir)
    return report
