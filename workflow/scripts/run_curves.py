"""A run's validation curve for the study's ``curves.parquet``: each evaluation with the
measured time (s), energy (J) and device-hours the run had spent when it was made.

Energy up to a wall-clock time comes from ``energy.json`` (the run's total, and each epoch's
energy when the energy subsystem split it) spread at constant power over the epochs' windows
in ``events.jsonl`` and the rest of the measured windows (:func:`power_segments`). Times are
ns since the epoch in, seconds out. Used by ``aggregate.py``.
"""


import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from phantom_parallel.energy.windows import read_events as read_events_file


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def read_events(path: Path) -> list[dict[str, Any]]:
    """The run's events (none without the file), read as ``phantom-energy`` reads them: a last
    line cut off by a kill is left out."""
    return read_events_file(path) if path.exists() else []


def _overlap_s(a: int, b: int, t: int) -> float:
    """Seconds of [a, b] (ns) before t (ns)."""
    return max(0, min(b, t) - a) / 1e9


def _subtract(window: tuple[int, int], cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of ``window`` outside every interval of ``cuts``."""
    parts = [window]
    for c0, c1 in cuts:
        nxt = []
        for a, b in parts:
            if c1 <= a or c0 >= b:
                nxt.append((a, b))
                continue
            if a < c0:
                nxt.append((a, c0))
            if c1 < b:
                nxt.append((c1, b))
        parts = nxt
    return [(a, b) for a, b in parts if b > a]


def measured_windows(events: list[dict[str, Any]], energy: dict[str, Any]) -> list[tuple[int, int]]:
    """The measured windows (ns): energy.json windows_ns, else measure_start/measure_end pairs."""
    if energy.get("windows_ns"):
        return [(int(a), int(b)) for a, b in energy["windows_ns"]]
    out, start = [], None
    for ev in sorted(events, key=lambda e: e["t_ns"]):
        if ev.get("event") == "measure_start":
            start = ev["t_ns"]
        elif ev.get("event") == "measure_end" and start is not None:
            out.append((int(start), int(ev["t_ns"])))
            start = None
    return out


def epoch_windows(events: list[dict[str, Any]]) -> dict[int, list[tuple[int, int]]]:
    """Wall-clock windows of each epoch (epoch_start/epoch_end pairs; several after a resume)."""
    out: dict[int, list[tuple[int, int]]] = {}
    open_: dict[int, int] = {}
    for ev in sorted(events, key=lambda e: e["t_ns"]):
        ep = ev.get("epoch")
        if ep is None:
            continue
        if ev.get("event") == "epoch_start":
            open_[int(ep)] = int(ev["t_ns"])
        elif ev.get("event") == "epoch_end" and int(ep) in open_:
            out.setdefault(int(ep), []).append((open_.pop(int(ep)), int(ev["t_ns"])))
    return out


def power_segments(events: list[dict[str, Any]], energy: dict[str, Any]) -> list[tuple[int, int, float]]:
    """(start_ns, end_ns, watts) segments whose integral over the run is its total energy.

    Each epoch's energy (energy.json ``per_epoch_j``) at constant power over its wall-clock
    window(s); what total_j has beyond the epochs at constant power over the measured time
    outside the epochs; without per-epoch energy, total_j at constant power over the measured
    windows.
    """
    total = energy.get("total_j")
    windows = measured_windows(events, energy)
    if total is None or not windows:
        return []
    per_epoch = {int(k): float(v) for k, v in (energy.get("per_epoch_j") or {}).items()
                 if v is not None}
    segs: list[tuple[int, int, float]] = []
    used = 0.0
    cuts: list[tuple[int, int]] = []
    for ep, wins in epoch_windows(events).items():
        dur = sum(b - a for a, b in wins) / 1e9
        if ep not in per_epoch or dur <= 0:
            continue
        segs += [(a, b, per_epoch[ep] / dur) for a, b in wins]
        used += per_epoch[ep]
        cuts += wins
    rest = [part for w in windows for part in _subtract(w, cuts)]
    rest_s = sum(b - a for a, b in rest) / 1e9
    if rest_s > 0:
        left = max(float(total) - used, 0.0)
        segs += [(a, b, left / rest_s) for a, b in rest]
    elif not segs:
        span = sum(b - a for a, b in windows) / 1e9
        segs = [(a, b, float(total) / span) for a, b in windows] if span > 0 else []
    return segs


def energy_until(segs: list[tuple[int, int, float]], t_ns: int) -> float:
    """Energy (J) of the run from its start up to wall-clock time t_ns."""
    return sum(w * _overlap_s(a, b, t_ns) for a, b, w in segs) if segs else math.nan


def measured_until(windows: list[tuple[int, int]], t_ns: int) -> float:
    """Seconds of the measured windows from the run's start up to t_ns."""
    return sum(_overlap_s(a, b, t_ns) for a, b in windows) if windows else math.nan


def evaluations(folder: Path, batch_size: int) -> tuple[pd.DataFrame, str]:
    """The run's validation evaluations: step, samples, epoch, val_loss, train_time_s, t_ns.

    RUN/evals.csv when the trainer wrote it (``--eval-every``); else RUN/epochs.csv (one per
    epoch) with train_time_s = cumulative metrics.csv step_time_s up to that step.
    """
    evals = folder / "evals.csv"
    if evals.exists():
        return pd.read_csv(evals).sort_values("step").reset_index(drop=True), "evals.csv"
    ep = pd.read_csv(folder / "epochs.csv").sort_values("epoch")
    cum: dict[int, float] = {}
    if (folder / "metrics.csv").exists():
        m = pd.read_csv(folder / "metrics.csv").drop_duplicates("step", keep="last").sort_values("step")
        cum = dict(zip(m["step"].astype(int), m["step_time_s"].astype(float).cumsum(), strict=True))
    df = pd.DataFrame({
        "step": ep["step"].astype(int).to_numpy(),
        "samples": ep["step"].astype(int).to_numpy() * batch_size,
        "epoch": ep["epoch"].astype(int).to_numpy(),
        "val_loss": ep["val_loss"].astype(float).to_numpy(),
        "train_time_s": [cum.get(int(s), math.nan) for s in ep["step"]],
        "t_ns": ep["t_ns"].astype("int64").to_numpy(),
        "train_loss": ep["train_loss"].astype(float).to_numpy(),
    })
    return df, "epochs.csv"


def curve_rows(keys: dict[str, Any], p: int, folder: Path, batch_size: int) -> list[dict[str, Any]]:
    """One row per evaluation of the run in ``folder`` (its identifying columns ``keys``, p
    ranks), with cumulative measured time (s), energy (J) and device-hours at its t_ns."""
    evals, source = evaluations(folder, batch_size)
    events = read_events(folder / "events.jsonl")
    energy = read_json(folder / "energy.json")
    segs = power_segments(events, energy)
    windows = measured_windows(events, energy)
    rows = []
    for rec in evals.to_dict("records"):
        t = int(rec["t_ns"])
        wall = measured_until(windows, t)
        rows.append(
            {
                **keys,
                "eval_source": source,
                "epoch": int(rec["epoch"]),
                "step": int(rec["step"]),
                "samples": int(rec.get("samples", rec["step"] * batch_size)),
                "train_loss": float(rec.get("train_loss", math.nan)),
                "val_loss": float(rec["val_loss"]),
                "train_time_s": float(rec.get("train_time_s", math.nan)),
                "t_ns": t,
                "measured_time_s": wall,
                "energy_j": energy_until(segs, t),
                "energy_method": energy.get("method", ""),
                "device_hours": p * wall / 3600,
            }
        )
    return rows
