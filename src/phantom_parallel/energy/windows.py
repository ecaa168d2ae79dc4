"""Measured windows and epochs from the trainer's ``events.jsonl``.

Each line: ``{"t_ns": int, "event": str, "epoch": int|null, "step": int, "host": str}``.
The measured window is ``measure_start`` .. ``measure_end``; after a resume there is one window
per attempt and energy is summed over them. A ``measure_start`` without its end (a killed
attempt) is closed at the last event of that attempt, with a warning.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .timestamps import OUT_OF_RANGE, check_ns


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


def event_time(value: object) -> int:
    """An event's ``t_ns`` as int: a JSON number (not a boolean) in ``0 .. MAX_NS``;
    :class:`ValueError` saying why not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"t_ns {json.dumps(value)[:40]} is not a number of ns")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(OUT_OF_RANGE)
    return check_ns(int(value))


def _event(line: str) -> dict:
    """One events line as a dict with an int ``t_ns``; :class:`ValueError` (bad ``t_ns``) or
    ``KeyError``/``TypeError`` (not an event)."""
    ev = json.loads(line)
    ev["t_ns"] = event_time(ev["t_ns"])
    str(ev["event"])
    epoch = ev.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise TypeError(f"epoch {json.dumps(epoch)[:40]} is not a whole number")
    return ev


def read_events(path: str | Path, warnings: list[str] | None = None) -> list[dict]:
    """Read events.jsonl; raise :class:`EventsError` naming file and line on bad input.

    A last line without a line end that is no event was cut off by a killed run: it is
    dropped with a warning naming file and line (appended to ``warnings``), and the complete
    lines are used (a window whose end it was is closed at the last event, warned about).
    """
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise EventsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    lines = text.split("\n")
    events = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(_event(line))
            continue
        except json.JSONDecodeError as exc:
            if no == len(lines):  # no line end after it: cut off mid-write
                (warnings if warnings is not None else []).append(
                    f"{path}:{no}: last line cut off (no line end, as a killed run leaves "
                    f"it): ignored: {line.strip()[:100]}"
                )
                continue
            why = f"not an event ({exc})"
        except ValueError as exc:  # its t_ns
            why = str(exc)
        except (KeyError, TypeError) as exc:
            why = f"not an event ({exc})"
        raise EventsError(f"{path}:{no}: {why}: {line.strip()[:100]}")
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
    notes: list[str] = []
    w = windows_from_events(read_events(path, notes), str(path))
    w.warnings[:0] = notes
    return w
