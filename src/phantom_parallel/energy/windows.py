"""Measured windows and epochs from the trainer's ``events.jsonl``.

Each line: ``{"t_ns": int, "event": str, "epoch": int|null, "step": int, "host": str}``.
The measured window is ``measure_start`` .. ``measure_end``; after a resume there is one window
per attempt and energy is summed over them. A ``measure_start`` without its end (a killed
attempt) is closed at the last event of that attempt, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class EventsError(ValueError):
    """The events file is unreadable (message names file and line)."""


@dataclass
class Windows:
    """Measured windows and epoch windows, all ``(start_ns, end_ns)``."""

    measured: list[tuple[int, int]] = field(default_factory=list)
    epochs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    run_span: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        """Summed length of the measured windows (s)."""
        return sum(b - a for a, b in self.measured) / 1e9


def read_events(path: str | Path) -> list[dict]:
    """Read events.jsonl; raise :class:`EventsError` naming file and line on bad input."""
    events = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
                int(ev["t_ns"])
                str(ev["event"])
            except (ValueError, KeyError, TypeError) as exc:
                raise EventsError(
                    f"{path}:{no}: not an event ({exc}): {line.strip()[:100]}"
                ) from exc
            events.append(ev)
    return events


def windows_from_events(events: list[dict], source: str = "events") -> Windows:
    """Pair ``measure_start``/``measure_end`` and ``epoch_start``/``epoch_end`` events."""
    w = Windows()
    evs = sorted(events, key=lambda e: int(e["t_ns"]))
    if not evs:
        raise EventsError(f"{source}: no events")
    w.run_span = (int(evs[0]["t_ns"]), int(evs[-1]["t_ns"]))
    open_m: int | None = None
    open_e: dict[int, int] = {}
    last_t = int(evs[0]["t_ns"])
    for ev in evs:
        t, name = int(ev["t_ns"]), ev["event"]
        if name in ("resume", "run_start") and open_m is not None:
            w.measured.append((open_m, last_t))
            w.warnings.append(
                f"{source}: measure_start at {open_m} has no measure_end; closed at {last_t}"
            )
            open_m = None
        if name == "measure_start":
            open_m = t
        elif name == "measure_end" and open_m is not None:
            w.measured.append((open_m, t))
            open_m = None
        elif name == "epoch_start" and ev.get("epoch") is not None:
            open_e[int(ev["epoch"])] = t
        elif name == "epoch_end" and ev.get("epoch") is not None and int(ev["epoch"]) in open_e:
            ep = int(ev["epoch"])
            w.epochs.setdefault(ep, []).append((open_e.pop(ep), t))
        last_t = t
    if open_m is not None:
        w.measured.append((open_m, last_t))
        w.warnings.append(
            f"{source}: measure_start at {open_m} has no measure_end; closed at {last_t}"
        )
    w.measured = [(a, b) for a, b in w.measured if b > a]
    if not w.measured:
        w.measured = [w.run_span] if w.run_span[1] > w.run_span[0] else []
        w.warnings.append(f"{source}: no measured window; using the whole run span instead")
    if not w.measured:
        raise EventsError(f"{source}: no window to attribute energy to")
    return w


def windows_from_file(path: str | Path) -> Windows:
    """:func:`windows_from_events` of an events.jsonl file."""
    return windows_from_events(read_events(path), str(path))
