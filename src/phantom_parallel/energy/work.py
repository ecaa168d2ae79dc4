"""What the energy is divided by: steps and samples in the measured windows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Work:
    """Steps and samples (count) in the measured windows, world size, devices per host."""

    steps: int | None = None
    samples: float | None = None
    world_size: int | None = None
    devices_per_host: int | None = None
