"""Per-rank checkpoints that make a killed run resume bit-exactly.

Layout under ``RUN/checkpoints/``::

    step-00000040/rank-00000.pt ...   model + optimizer state of each rank, position in the data
    latest.json                       {"step", "epoch", "step_in_epoch", "world_size", "config"}

Every rank writes its own shard (atomically: temporary file, then rename); after a barrier,
rank 0 points ``latest.json`` at the new step and removes older steps (the last ``keep`` are
kept). A checkpoint is valid only once ``latest.json`` names it, so a run killed while saving
resumes from the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from phantom_parallel.atomic import write_json_atomic


class ResumeMismatchError(ValueError):
    """The run folder holds a checkpoint of a different configuration or world size."""


@dataclass(frozen=True)
class Position:
    """Where training stands: ``step`` optimizer steps done; ``epoch`` and ``step_in_epoch``
    locate the next batch."""

    step: int
    epoch: int
    step_in_epoch: int


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


class Checkpointer:
    def __init__(self, run_dir: Path, rank: int, world_size: int, config: dict[str, Any],
                 keep: int = 2, legacy: dict[str, Any] | None = None) -> None:
        self.dir = run_dir / "checkpoints"
        self.rank, self.world_size, self.config, self.keep = rank, world_size, config, keep
        self.legacy = legacy or {}  # the value a setting had before it was recorded

    def latest(self) -> dict[str, Any] | None:
        path = self.dir / "latest.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def check_compatible(self) -> Position | None:
        """The position to resume from, or ``None`` for a fresh run.

        Raises :class:`ResumeMismatchError` naming the differing value when the folder holds a
        checkpoint of another world size or configuration (so nothing is overwritten).
        """
        latest = self.latest()
        if latest is None:
            return None
        if latest["world_size"] != self.world_size:
            raise ResumeMismatchError(
                f"{self.dir}/latest.json was written by a run with world size "
                f"{latest['world_size']}, this launch has world size {self.world_size}: "
                "relaunch with the same number of ranks or use another --run-dir")
        for key, value in self.config.items():
            had = latest["config"].get(key, self.legacy.get(key))
            if had != value:
                raise ResumeMismatchError(
                    f"{self.dir}/latest.json was written with {key}={had!r}, "
                    f"this launch has {key}={value!r}: use the same command or another --run-dir")
        return Position(latest["step"], latest["epoch"], latest["step_in_epoch"])

    def _shard(self, step: int, rank: int) -> Path:
        return self.dir / f"step-{step:08d}" / f"rank-{rank:05d}.pt"

    def save(self, pos: Position, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        shard = self._shard(pos.step, self.rank)
        shard.parent.mkdir(parents=True, exist_ok=True)
        tmp = shard.with_name(f".{shard.name}.tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "position": pos.__dict__}, tmp)
        os.replace(tmp, shard)
        _barrier()
        if self.rank == 0:
            write_json_atomic(self.dir / "latest.json", {
                **pos.__dict__, "world_size": self.world_size, "config": self.config})
            steps = sorted(self.dir.glob("step-*"))
            for old in steps[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        _barrier()

    def load(self, pos: Position, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        shard = self._shard(pos.step, self.rank)
        if not shard.exists():
            raise FileNotFoundError(f"checkpoint shard {shard} named by {self.dir}/latest.json is missing")
        state = torch.load(shard, map_location=next(model.parameters()).device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
