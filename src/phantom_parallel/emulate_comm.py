"""The stand-ins ``phantom-emulate`` runs one rank's share with: a communicator whose
collectives are local operations of the same output shape (:class:`StandInComm`), and an
aten-operator counter (:class:`CountOps`)."""

from __future__ import annotations

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from phantom_parallel.comm import CommLedger


class StandInComm:
    """Rank ``rank`` of ``world_size`` virtual ranks; each collective is a local stand-in:

    - all-gather: the local chunk written to all p slots of a new ``p x ...`` buffer (writes
      p chunks, as receiving them does);
    - reduce-scatter: the sum over the p chunks (reads p chunks, writes one);
    - all-reduce: one in-place read and write of the tensor (values unchanged).

    Calls and payload bytes are counted in :attr:`ledger` like :class:`~phantom_parallel.comm.Comm`.
    """

    def __init__(self, world_size: int, rank: int = 0) -> None:
        self.rank, self.world_size, self.group, self.ledger = rank, world_size, None, CommLedger()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            self.ledger.record("all_reduce", t.numel() * t.element_size())
            t.mul_(1)
        return t

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            self.ledger.record("all_gather", t.numel() * t.element_size())
        return t.unsqueeze(0).expand(self.world_size, *t.shape).contiguous()

    def reduce_scatter(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return t[0]
        self.ledger.record("reduce_scatter", t.numel() * t.element_size())
        return t.sum(0)


class CountOps(TorchDispatchMode):
    """Counts the aten operators dispatched inside the ``with`` block by name: views
    (:attr:`view_names`: ``t``, ``view``, ``slice``, ``detach`` ..., dispatched by the host but
    launching no device kernel) and the others (:attr:`other_names`); :attr:`count` and
    :attr:`views` are the totals."""

    def __init__(self) -> None:
        super().__init__()
        self.view_names: collections.Counter[str] = collections.Counter()
        self.other_names: collections.Counter[str] = collections.Counter()

    @property
    def views(self) -> int:
        return sum(self.view_names.values())

    @property
    def count(self) -> int:
        return self.views + sum(self.other_names.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        names = self.view_names if func.is_view else self.other_names
        names[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))
