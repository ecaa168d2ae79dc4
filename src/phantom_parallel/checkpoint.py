"""Per-rank checkpoints that make a killed run resume bit-exactly.

Layout under ``RUN/checkpoints/``::

    step-00000040/rank-00000.pt ...   model + optimizer state of each rank, position in the data
    latest.json                       {"step", "epoch", "step_in_epoch", "world_size", "config"}

Every rank writes its own shard (atomically: temporary file, then rename); after a barrier,
rank 0 points ``latest.json`` at the new step and removes older steps (the last ``keep`` are
kept). A checkpoint is valid only once ``latest.json`` names it, so a run killed while saving
resumes from the previous one. Resuming (:meth:`Checkpointer.resume`) loads and checks every
file a rank needs before the run folder is written; a latest checkpoint whose shards do not
all load is replaced by the previous one (with a warning line).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from phantom_parallel.atomic import read_json, write_json_atomic


class ResumeMismatchError(ValueError):
    """The run folder holds a checkpoint of a different configuration or world size."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (one line naming it). ``own``: the file is this
    rank's shard (other ranks may be fine)."""

    def __init__(self, message: str, own: bool = False) -> None:
        super().__init__(message)
        self.own = own


@dataclass(frozen=True)
class Position:
    """Where training stands: ``step`` optimizer steps done; ``epoch`` and ``step_in_epoch``
    locate the next batch."""

    step: int
    epoch: int
    step_in_epoch: int


_LATEST_KEYS = {"step": int, "epoch": int, "step_in_epoch": int, "world_size": int, "config": dict}


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_ranks(ok: bool, device: torch.device) -> bool:
    """Whether ``ok`` holds on every rank (a collective when a process group is up)."""
    if not dist.is_initialized():
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) == 0


def _warn(message: str) -> None:
    sys.stderr.write(f"phantom-train: warning: {message}\n")  # one write: ranks do not interleave
    sys.stderr.flush()


def _step_of(folder: Path) -> int | None:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        return None


def recorded_differences(recorded: dict[str, Any], now: dict[str, Any],
                         legacy: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded value, this launch's)`` for each key of ``now`` whose value differs
    from the one a run recorded. A key the record lacks (written before it was recorded) takes
    its ``legacy`` value; one whose legacy value is None is unknown and not compared."""
    out = []
    for key, value in now.items():
        if key not in recorded and key in legacy and legacy[key] is None:
            continue  # not recorded then, and not known now
        had = recorded.get(key, legacy.get(key))
        if had != value:
            out.append((key, had, value))
    return out


class Checkpointer:
    def __init__(self, run_dir: Path, rank: int, world_size: int, config: dict[str, Any],
                 keep: int = 2, legacy: dict[str, Any] | None = None) -> None:
        self.dir = run_dir / "checkpoints"
        self.rank, self.world_size, self.config, self.keep = rank, world_size, config, keep
        self.legacy = legacy or {}  # the value a setting had before it was recorded (None: unknown)

    def latest(self) -> dict[str, Any] | None:
        """``latest.json`` (None: no checkpoint yet); :class:`CheckpointError` naming it when
        it is not JSON or lacks a key."""
        path = self.dir / "latest.json"
        if not path.exists():
            return None
        try:
            latest = read_json(path)
        except ValueError as err:
            raise CheckpointError(f"{err}; the run cannot resume without it: restore it or use "
                                  "another --run-dir") from None
        for key, kind in _LATEST_KEYS.items():
            value = latest.get(key) if isinstance(latest, dict) else None
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CheckpointError(f"{path}: key {key!r} is missing or not "
                                      f"{'an integer' if kind is int else 'an object'}")
        return latest

    def check_compatible(self) -> Position | None:
        """The position to resume from, or ``None`` for a fresh run.

        Raises :class:`ResumeMismatchError` naming the differing value when the folder holds a
        checkpoint of another world size or configuration (so nothing is overwritten), and
        :class:`CheckpointError` when ``latest.json`` cannot be read.
        """
        latest = self.latest()
        if latest is None:
            return None
        if latest["world_size"] != self.world_size:
            raise ResumeMismatchError(
                f"{self.dir}/latest.json was written by a run with world size "
                f"{latest['world_size']}, this launch has world size {self.world_size}: "
                "relaunch with the same number of ranks or use another --run-dir")
        differ = recorded_differences(latest["config"], self.config, self.legacy)
        if differ:
            key, had, value = differ[0]
            raise ResumeMismatchError(
                f"{self.dir}/latest.json was written with {key}={had!r}, "
                f"this launch has {key}={value!r}: use the same command or another --run-dir")
        return Position(latest["step"], latest["epoch"], latest["step_in_epoch"])

    def resume(self, device: torch.device) -> tuple[Position, dict[str, Any]] | None:
        """Where to resume and this rank's saved state (None: a fresh run), read before
        anything is written; every rank calls it (a collective when a process group is up).

        The checkpoint ``latest.json`` names is used when every rank's shard of it loads;
        otherwise the newest older step folder whose shards all load (a warning line says
        so, and its later steps are trained again, bit-exactly). Raises
        :class:`ResumeMismatchError`, or :class:`CheckpointError` naming the file when no
        checkpoint loads (``own``: on the ranks whose shard is bad; the others raise it with
        an empty message).
        """
        pos = self.check_compatible()
        if pos is None:
            return None
        older = sorted((s for f in self.dir.glob("step-*")
                        if (s := _step_of(f)) is not None and s < pos.step), reverse=True)
        errors: list[CheckpointError] = []  # this rank's, newest checkpoint first
        for step in (pos.step, *older):
            try:
                state = self._load(step, device, pos if step == pos.step else None)
            except CheckpointError as err:
                state = None
                errors.append(err)
            if all_ranks(state is not None, device):
                assert state is not None
                for err in errors:
                    _warn(str(err))
                if step != pos.step and self.rank == 0:
                    _warn(f"the checkpoint of step {pos.step} cannot be loaded; resuming from "
                          f"the previous one, step {step} (the steps after it are trained again)")
                return Position(**state["position"]), state
        if errors:
            raise CheckpointError(f"{'; '.join(map(str, errors))}; no checkpoint in {self.dir} "
                                  "loads: restore the file or use another --run-dir", own=True)
        raise CheckpointError("")

    def _load(self, step: int, device: torch.device, expect: Position | None) -> dict[str, Any]:
        """This rank's shard of ``step``, loaded and checked."""
        shard = self._shard(step, self.rank)
        if not shard.is_file():
            raise CheckpointError(f"checkpoint shard {shard} is missing", own=True)
        try:
            state = torch.load(shard, map_location=device, weights_only=False)
        except Exception as exc:  # truncated or garbled: torch's zip reader, unpickling
            reason = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() \
                else type(exc).__name__
            raise CheckpointError(f"checkpoint shard {shard} cannot be loaded ({reason})",
                                  own=True) from None
        try:
            where: Position | None = Position(**state["position"])
            if not (isinstance(state["model"], dict) and isinstance(state["optimizer"], dict)):
                where = None
        except (KeyError, TypeError):
            where = None
        if where is None or where.step != step or (expect is not None and where != expect):
            raise CheckpointError(f"checkpoint shard {shard} does not hold the model, optimizer "
                                  f"and position of step {step}", own=True)
        return state

    def _shard(self, step: int, rank: int) -> Path:
        return self.dir / f"step-{step:08d}" / f"rank-{rank:05d}.pt"

    def save(self, pos: Position, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Write this rank's shard of ``pos``; rank 0 then points ``latest.json`` at it and
        removes the step folders past ``keep`` and any later than ``pos`` (left by a run that
        resumed from an older checkpoint, or was killed while saving)."""
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
            steps = sorted((s, f) for f in self.dir.glob("step-*") if (s := _step_of(f)) is not None)
            kept = [f for s, f in steps if s <= pos.step][-self.keep:]
            for _, old in steps:
                if old not in kept:
                    shutil.rmtree(old, ignore_errors=True)
        _barrier()

    @staticmethod
    def apply(state: dict[str, Any], model: torch.nn.Module,
              optimizer: torch.optim.Optimizer) -> None:
        """Load a state from :meth:`resume` into the built model and optimizer."""
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
