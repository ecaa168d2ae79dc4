"""Communication patterns as autograd Functions, one small conjugate pair each.

Naming follows Megatron-LM's ``tensor_parallel/mappings.py``; every collective goes through
:class:`phantom_parallel.comm.Comm` so it is counted and timed.

================================  ==========================  ==============================
function                          forward                     backward
================================  ==========================  ==============================
:func:`copy_to_region`            identity                    all-reduce of the input grad
:func:`reduce_from_region`        all-reduce                  identity
:func:`scatter_to_region`         keep own slice (last dim)   all-gather of slices
================================  ==========================  ==============================

Phantom parallelism's pattern (all-gather of the k x B ghosts forward, its adjoint, a
reduce-scatter of p x k x B, backward) lives inside the phantom layer's own Function
(:class:`phantom_parallel.layers.PhantomLinear`), with the GEMMs around it.
"""

from __future__ import annotations

from typing import Any

import torch

from phantom_parallel.comm import Comm


class _CopyToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, comm: Comm) -> torch.Tensor:
        ctx.comm = comm
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.comm.all_reduce(grad.clone()), None


class _ReduceFromRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, comm: Comm) -> torch.Tensor:
        return comm.all_reduce(x.clone())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _ScatterToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, comm: Comm) -> torch.Tensor:
        ctx.comm = comm
        m = x.shape[-1] // comm.world_size
        return x[..., comm.rank * m : (comm.rank + 1) * m].contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        parts = ctx.comm.all_gather(grad)  # p x ... x m
        return torch.cat(tuple(parts), dim=-1), None


def copy_to_region(x: torch.Tensor, comm: Comm) -> torch.Tensor:
    """Enter a tensor-parallel region with a replicated ``x`` (B x n): identity forward,
    all-reduce of the ``B x n`` input gradient backward."""
    return _CopyToRegion.apply(x, comm)


def reduce_from_region(x: torch.Tensor, comm: Comm) -> torch.Tensor:
    """Leave a tensor-parallel region: sum the partial ``B x n_out`` products over ranks
    (all-reduce) forward, pass the gradient through backward."""
    return _ReduceFromRegion.apply(x, comm)


def scatter_to_region(x: torch.Tensor, comm: Comm) -> torch.Tensor:
    """Take this rank's ``B x m`` slice of a replicated ``B x n`` tensor (no communication);
    backward all-gathers the slices' gradients into ``B x n``."""
    return _ScatterToRegion.apply(x, comm)
