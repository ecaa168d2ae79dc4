"""A run folder's energy: its power logs (``power/``), the work done in its measured windows
(``metrics.csv``, ``manifest.json``) and :func:`extract`, the report ``phantom-energy extract``
writes (measured when a log has samples in the window, else the documented power model)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, NamedTuple

from .ranks import used_devices
from .report import DEFAULT_BUSY_W, LogInput, Work, measure_logs, model_report
from .run_inputs import InputError, check_manifest, check_sampler_meta, load_json
from .windows import Windows, windows_from_file

__all__ = ["InputError", "RunLogs", "check_watts", "extract", "run_logs", "work_done"]


def _short(host: str) -> str:
    return host.split(".")[0]


class RunLogs(NamedTuple):
    """A run's power logs (``logs``), the logs its samplers list that are missing (file ->
    why) and warnings naming those and every sampler that had no source (``notes``)."""

    logs: list[LogInput]
    missing: dict[str, str]
    notes: list[str]


def run_logs(power_dir: Path) -> RunLogs:
    """Logs of a run's ``power/`` folder: from ``*.sampler.json``, else ``*.log`` sniffed."""
    logs: list[LogInput] = []
    missing: dict[str, str] = {}
    notes: list[str] = []
    seen: set[Path] = set()
    for meta_path in sorted(power_dir.glob("*.sampler.json")):
        meta = check_sampler_meta(load_json(meta_path), meta_path)
        if not meta.get("log"):
            tried = "; ".join(meta.get("skipped_sources") or [])
            why = f"found no working source: {tried}" if tried else "was told source none"
            notes.append(f"{meta_path}: no power log: the sampler {why}")
            continue
        path = power_dir / meta["log"]
        seen.add(path)
        if not path.is_file():
            missing[str(path)] = f"listed as the log in {meta_path.name} but missing"
            notes.append(f"{path}: skipped: {missing[str(path)]}")
            continue
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
    return RunLogs(logs, missing, notes)


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


def check_watts(value: float, what: str) -> float:
    """``value`` (W) if it is a finite number >= 0, else :class:`InputError` naming ``what``
    (the flag, or the file and key)."""
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} {value!r}: must be a number of W >= 0") from None
    if not (math.isfinite(w) and w >= 0):
        raise InputError(f"{what} {value!r}: must be a finite number of W >= 0")
    return w


def _watts(
    arg: float | None, flag: str, cfg: dict[str, Any], key: str, manifest: Path
) -> tuple[float | None, str]:
    """The power model's W per device and where it came from: the flag, else the run
    config's ``energy.KEY`` (or ``energy_KEY``); checked finite and >= 0."""
    if arg is not None:
        return check_watts(arg, flag), flag
    energy_cfg = cfg.get("energy") if isinstance(cfg.get("energy"), dict) else {}
    name = f"config.energy.{key}" if key in energy_cfg else f"config.energy_{key}"
    v = energy_cfg.get(key, cfg.get(f"energy_{key}"))
    what = f"{manifest}: {name}"
    return (check_watts(v, what), what) if v is not None else (None, "")


def _model_watts(
    busy: float | None, idle: float | None, cfg: dict[str, Any], manifest: Path
) -> tuple[float | None, float | None]:
    """Busy and idle W of the power model; :class:`InputError` when idle is above busy."""
    busy_w, busy_from = _watts(busy, "--busy-watts", cfg, "busy_watts", manifest)
    idle_w, idle_from = _watts(idle, "--idle-watts", cfg, "idle_watts", manifest)
    b = DEFAULT_BUSY_W if busy_w is None else busy_w
    if idle_w is not None and idle_w > b:
        raise InputError(
            f"{idle_from} {idle_w:g}: idle power above the busy power "
            f"{b:g} W ({busy_from or 'default'})"
        )
    return busy_w, idle_w


def extract(run_dir: Path, busy_w: float | None, idle_w: float | None) -> dict[str, Any]:
    """Energy report of a run folder (measured if any log has samples, else modelled; every
    unusable log named in a warning)."""
    events = run_dir / "events.jsonl"
    if not events.exists():
        raise InputError(f"{events}: missing (the run's events file is the energy clock)")
    windows = windows_from_file(events)
    manifest_path = run_dir / "manifest.json"
    manifest = (
        check_manifest(load_json(manifest_path), manifest_path) if manifest_path.exists() else {}
    )
    cfg = manifest.get("config") or {}
    work = work_done(run_dir, manifest, windows)
    found = run_logs(run_dir / "power") if (run_dir / "power").is_dir() else RunLogs([], {}, [])
    used = used_devices(manifest, found.logs)
    got = measure_logs(found.logs, windows, work, used.per_host, [*found.notes, *used.warnings])
    report = got.report
    if report is not None:
        report["device_attribution"] = {"method": used.method, "ranks_per_device": used.ranks}
    else:
        busy, idle = _model_watts(busy_w, idle_w, cfg, manifest_path)
        skipped = {**found.missing, **got.unusable}
        reason = "no power logs"
        if found.logs or skipped:
            reason = "no power log with samples in the measured window"
        if skipped:
            reason += f" (skipped: {', '.join(skipped)})"
        hosts = list(dict.fromkeys(_short(str(h)) for h in manifest.get("hosts") or [])) or None
        logs = {**{p: {"unusable": why} for p, why in found.missing.items()}, **got.logs}
        notes = [*found.notes, *got.log_warnings]
        report = model_report(windows, work, busy, idle, reason, hosts, logs, notes)
    report["run_dir"] = str(run_dir)
    return report
