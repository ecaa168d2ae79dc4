"""Energy per emulated step from the project's own power sampler, or null: never modelled.

:class:`EnergyMeter` starts :func:`phantom_parallel.energy.sampler.start_sampler` once for a
whole ``phantom-emulate`` run, times a window of back-to-back steps per row (host clock, with
the device synchronised at both ends), and integrates each window with
:func:`phantom_parallel.energy.integrate.device_energy` (the sensor's energy counter when it has
one, else the power trapezoid): between the p of a run once the sampler's log reaches past the
window, and at the end, after the sampler has stopped, every window still pending. Devices
read: the CUDA device's index on a GPU (the sampler's device numbering, as in the trainer),
every zone the log reports on a CPU (RAPL packages). A window the samples do not cover (< 95 %) gives null with the reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MIN_COVERAGE = 0.95
FIRST_POLL_TIMEOUT_S = 15.0


class EnergyMeter:
    """Context manager; ``measure`` per row, ``settle(rows)`` fills the energy fields of the
    windows the sampler has logged past (a run in progress), ``resolve(rows)`` all the rest.

    Args:
        source: a power source name (``none``: every row gets null energy).
        out_dir: folder for the sampler's log (a temporary folder of the run).
        window_s: seconds of back-to-back steps per energy reading.
        interval_s: the sampler's poll interval (s).
    """

    def __init__(self, source: str, out_dir: Path, window_s: float, interval_s: float = 0.1) -> None:
        self.source, self.out_dir, self.window_s = source, out_dir, window_s
        self.interval_s = interval_s
        self.handle: Any = None
        self.windows: list[tuple[int, int, int, str | None] | None] = []

    def __enter__(self) -> EnergyMeter:
        if self.source == "none":
            return self
        from phantom_parallel.energy.sampler import start_sampler

        self.handle = start_sampler(self.source, self.out_dir, interval_s=self.interval_s)
        if self.handle.log_path is None:  # auto found no sensor
            self.handle = None
            return self
        deadline = time.monotonic() + FIRST_POLL_TIMEOUT_S
        while time.monotonic() < deadline:  # the first poll must precede the first window
            if self.handle.log_path.exists() and self.handle.log_path.stat().st_size > 64:
                break
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.stop()

    def measure(self, run_step: Callable[[], None], step_s: float,
                device: torch.device) -> dict[str, Any]:
        """Run back-to-back steps for about ``window_s`` and remember the window; returns the
        row's energy fields (filled in by :meth:`resolve`)."""
        if self.handle is None:
            self.windows.append(None)
            return {"energy_j_per_step": None, "energy_method": "none (no power sensor)"}
        steps = max(1, math.ceil(self.window_s / max(step_s, 1e-9)))
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.time_ns()
        for _ in range(steps):
            run_step()
        sync()
        t1 = time.time_ns()
        self.windows.append((t0, t1, steps, str(device.index) if device.type == "cuda" else None))
        return {"energy_j_per_step": None, "energy_method": "pending"}

    def settle(self, rows: list[dict[str, Any]], wait_s: float | None = None) -> None:
        """Integrate the windows measured so far into their rows (in order, as
        :meth:`measure` returned them) while the sampler still runs, once its log reaches past
        each window's end; waits up to ``wait_s`` (default 10 polls) for that. A window the
        log does not reach stays ``pending`` for :meth:`resolve`. Used between the p of a run,
        so that the rows written as it goes carry their energy."""
        if self.handle is None:
            return
        from phantom_parallel.energy.formats import parse

        deadline = time.monotonic() + (10 * self.interval_s if wait_s is None else wait_s)
        while True:
            parsed = parse(self.handle.log_path)
            reached = max((x.t_ns for x in parsed.samples), default=0)
            ends = [w[1] for w in self.windows if w is not None]
            if all(t1 < reached for t1 in ends) or time.monotonic() >= deadline:
                break
            time.sleep(self.interval_s)
        self._integrate(rows, parsed, reached)

    def resolve(self, rows: list[dict[str, Any]]) -> None:
        """Stop the sampler and integrate every window still pending into its row (in order)."""
        if self.handle is None:
            return
        self.handle.stop()
        from phantom_parallel.energy.formats import parse

        self._integrate(rows, parse(self.handle.log_path), None)

    def _integrate(self, rows: list[dict[str, Any]], parsed: Any, reached: int | None) -> None:
        """Fill the energy of each pending window that ends before ``reached`` (ns; None:
        every one) from the parsed sampler log; a filled window is not pending any more."""
        from phantom_parallel.energy.integrate import device_energy

        devices = sorted({s.device for s in parsed.samples})
        for i, (row, window) in enumerate(zip(rows, self.windows, strict=True)):
            if window is None or (reached is not None and window[1] >= reached):
                continue
            self.windows[i] = None
            t0, t1, steps, used = window
            wanted = [used] if used is not None else devices
            parts = [device_energy(d, parsed.samples, t0, t1) for d in wanted]
            bad = [p for p in parts if p.method == "none" or p.coverage < MIN_COVERAGE]
            if not parts or bad:
                why = "; ".join(w for p in bad for w in p.warnings) or "no device readings"
                row.update(energy_j_per_step=None, energy_method=f"none ({why})")
                continue
            methods = sorted({p.method for p in parts})
            row.update(energy_j_per_step=sum(p.energy_j for p in parts) / steps,
                       energy_method=f"measured {self.handle.source} {'+'.join(methods)}")
