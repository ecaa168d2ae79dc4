"""The one place every collective goes through: counted, sized and timed.

Every communication of the TP and PP operators calls a method of :class:`Comm`. Each call is
recorded in a :class:`CommLedger` as (op, payload bytes, seconds), where the payload is the
tensor handed to the collective by this rank:

- all-reduce: the whole tensor (numel x element size);
- all-gather: this rank's local chunk;
- reduce-scatter: the whole input (p chunks).

With one rank every collective is the identity and nothing is recorded. The trainer reads and
resets the ledger once per optimizer step, so a run reports compute time versus communication
time and bytes per step; :mod:`phantom_parallel.costs` predicts the same numbers in closed form.

Timing never changes what it measures. On CPU tensors a collective is synchronous and its
seconds are host wall-clock around the call. On accelerator tensors calls are asynchronous:
a pair of device events is recorded on the current stream around each call (no host sync),
and the pairs are resolved when :attr:`CommLedger.seconds` is read, once per step, after the
step has finished anyway. ``timing="device-sync"`` (synchronise the device before and after
each call, as a diagnostic only: it serialises the step) and ``timing="off"`` (count calls and
bytes only) exist to measure the timing's own cost.
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
    _seconds: float = 0.0
    _pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = field(default_factory=list)
    _pool: list[torch.cuda.Event] = field(default_factory=list)

    def record(self, op: str, nbytes: int, seconds: float = 0.0) -> None:
        self.calls[op] += 1
        self.payload_bytes[op] += nbytes
        self._seconds += seconds

    def event_pair(self) -> tuple[torch.cuda.Event, torch.cuda.Event]:
        """Two timing events for one call, reused from earlier steps when possible."""
        used = 2 * len(self._pending)
        while len(self._pool) < used + 2:
            self._pool.append(torch.cuda.Event(enable_timing=True))
        pair = (self._pool[used], self._pool[used + 1])
        self._pending.append(pair)
        return pair

    @property
    def seconds(self) -> float:
        """Seconds spent inside the collectives; resolves pending device events (waits for the
        last one to complete: read it once the step is over)."""
        if self._pending:
            self._pending[-1][1].synchronize()
            self._seconds += sum(a.elapsed_time(b) for a, b in self._pending) / 1e3
            self._pending.clear()
        return self._seconds

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.payload_bytes.values())

    def reset(self) -> None:
        self.calls.clear()
        self.payload_bytes.clear()
        self._seconds = 0.0
        self._pending.clear()


TIMINGS = ("events", "device-sync", "off")


def _all_gather_flat(out: torch.Tensor, t: torch.Tensor,
                     group: dist.ProcessGroup | None) -> None:
    """Every rank's flat ``t`` into ``out`` (``p * numel(t)``, rank-major). torch >= 2.13 names
    it ``all_gather_single`` (``all_gather_into_tensor`` is deprecated there)."""
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    fn(out, t, group=group)


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
        group: the process group (``None``: the default group; with no process group at all,
            a one-rank group whose collectives are identities).
        timing: how accelerator collectives are timed (CPU ones always by host clock):
            ``"events"`` (default: device events on the current stream, no host sync),
            ``"device-sync"`` (diagnostic: synchronise the device around every call) or
            ``"off"`` (no timing; calls and bytes are still counted).
    """

    def __init__(self, group: dist.ProcessGroup | None = None, *, timing: str = "events") -> None:
        if timing not in TIMINGS:
            raise ValueError(f"timing={timing!r}: choose one of {', '.join(TIMINGS)}")
        self.group = group
        initialised = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank(group) if initialised else 0
        self.world_size = dist.get_world_size(group) if initialised else 1
        self.timing = timing
        self.ledger = CommLedger()

    def _timed(self, op: str, nbytes: int, ref: torch.Tensor, fn: Callable[[], object]) -> None:
        on_device = ref.device.type != "cpu"
        if on_device and self.timing == "events":
            start, end = self.ledger.event_pair()
            stream = torch.cuda.current_stream(ref.device)
            start.record(stream)
            fn()
            end.record(stream)
            self.ledger.record(op, nbytes)
            return
        if on_device and self.timing == "off":
            fn()
            self.ledger.record(op, nbytes)
            return
        sync = on_device and self.timing == "device-sync"
        if sync:
            torch.cuda.synchronize(ref.device)
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize(ref.device)
        self.ledger.record(op, nbytes, time.perf_counter() - t0)

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` (any shape) over ranks, in place; returns ``t``."""
        if self.world_size == 1:
            return t
        self._timed("all_reduce", _nbytes(t), t, lambda: dist.all_reduce(t, group=self.group))
        return t

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        """Gather the local chunks (any shape, e.g. k x B) of all ranks into ``p x ...`` (rank-major)."""
        if self.world_size == 1:
            return t.unsqueeze(0)
        t = t.contiguous()  # no copy when already contiguous (a linear's output is)
        out = t.new_empty((self.world_size, *t.shape))
        # into one flat buffer (rank-major): no per-rank output list to copy out of
        self._timed(
            "all_gather",
            _nbytes(t),
            t,
            lambda: _all_gather_flat(out.view(-1), t.view(-1), self.group),
        )
        return out

    def reduce_scatter(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``p x ...`` over ranks and keep this rank's chunk (``...``)."""
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
