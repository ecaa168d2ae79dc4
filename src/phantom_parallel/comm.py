"""The one place every collective goes through: counted, sized and timed.

Every communication of the TP and PP operators calls a method of :class:`Comm`. Each call is
recorded in a :class:`CommLedger` as (op, payload bytes, seconds), where the payload is the
tensor handed to the collective by this rank:

- all-reduce: the whole tensor (numel x element size);
- all-gather: this rank's local chunk;
- reduce-scatter: the whole input (p chunks).

With one rank every collective is the identity and nothing is recorded. The trainer reads and resets the ledger once per optimizer step, so a run reports compute time
versus communication time and bytes per step; :mod:`phantom_parallel.costs` predicts the same
numbers in closed form.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class CommLedger:
    """Per-rank running totals of collective calls since the last :meth:`reset`.

    Attributes:
        calls: number of calls per op name ("all_reduce", "all_gather", "reduce_scatter").
        payload_bytes: bytes handed to the collective per op name.
        seconds: wall-clock seconds spent inside the collective calls, all ops together.
    """

    calls: Counter[str] = field(default_factory=Counter)
    payload_bytes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def record(self, op: str, nbytes: int, seconds: float) -> None:
        self.calls[op] += 1
        self.payload_bytes[op] += nbytes
        self.seconds += seconds

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.payload_bytes.values())

    def reset(self) -> None:
        self.calls.clear()
        self.payload_bytes.clear()
        self.seconds = 0.0


def _reduce_scatter_flat(out: torch.Tensor, t: torch.Tensor,
                         group: dist.ProcessGroup | None) -> None:
    """Sum the flat ``p * numel(out)`` input over ranks into ``out`` (this rank's chunk)."""
    fn = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    fn(out, t, group=group)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Comm:
    """A process group plus the ledger that counts what goes through it.

    Args:
        group: the process group (``None``: the default group).
        sync_timing: synchronise the accelerator around each collective so its time is the
            collective's own (needed on CUDA/ROCm where calls are asynchronous; free on CPU).
    """

    def __init__(self, group: dist.ProcessGroup | None = None, sync_timing: bool = True) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.sync_timing = sync_timing
        self.ledger = CommLedger()

    def _sync(self, t: torch.Tensor) -> None:
        if self.sync_timing and t.is_cuda:
            torch.cuda.synchronize(t.device)

    def _timed(self, op: str, nbytes: int, ref: torch.Tensor, fn: Callable[[], object]) -> None:
        self._sync(ref)
        t0 = time.perf_counter()
        fn()
        self._sync(ref)
        self.ledger.record(op, nbytes, time.perf_counter() - t0)

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` (any shape) over ranks, in place; returns ``t``."""
        if self.world_size == 1:
            return t
        self._timed("all_reduce", _nbytes(t), t, lambda: dist.all_reduce(t, group=self.group))
        return t

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        """Gather the local ``B x k`` chunks of all ranks into ``p x B x k`` (rank-major)."""
        if self.world_size == 1:
            return t.unsqueeze(0)
        t = t.contiguous()  # no copy when already contiguous (a linear's output is)
        out = t.new_empty((self.world_size, *t.shape))
        # into one flat buffer (rank-major): no per-rank output list to copy out of
        self._timed(
            "all_gather",
            _nbytes(t),
            t,
            lambda: dist.all_gather_into_tensor(out.view(-1), t.view(-1), group=self.group),
        )
        return out

    def reduce_scatter(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``p x B x k`` over ranks and keep this rank's ``B x k`` slice."""
        if self.world_size == 1:
            return t[0]
        t = t.contiguous()  # no copy when already contiguous (a stacked gradient is)
        out = t.new_empty(t.shape[1:])
        # one flat input buffer: the single-tensor reduce-scatter (gloo's list version runs
        # p reductions and is about 1.5-2x slower on p=2)
        self._timed(
            "reduce_scatter",
            _nbytes(t),
            t,
            lambda: _reduce_scatter_flat(out.view(-1), t.view(-1), self.group),
        )
        return out
