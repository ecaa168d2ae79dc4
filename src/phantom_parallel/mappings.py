"""Communication patterns as autograd Functions, one small conjugate pair each.

Naming follows Megatron-LM's ``tensor_parallel/mappings.py``; every collective goes through
:class:`phantom_parallel.comm.Comm` so it is counted and timed.

================================  ==========================  ==============================
function                          forward                     backward
================================  ==========================  ==============================
:func:`copy_to_region`            identity                    all-reduce of the input grad
:func:`reduce_from_region`        all-reduce                  identity
:func:`scatter_to_region`         keep own slice (last dim)   all-gather of slices
:func:`gather_ghosts`             all-gather of k x B         reduce-scatter of p x k x B
================================  ==========================  ==============================

``gather_ghosts`` is phantom parallelism's operator: each rank's ``k`` ghost activations are
gathered from all ranks; the adjoint of an all-gather is a reduce-scatter, so rank ``s``
receives the sum over ranks of the gradients flowing into its ghosts.
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


class _GatherGhosts(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, comm: Comm) -> torch.Tensor:
        ctx.comm = comm
        return comm.all_gather(g)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.comm.reduce_scatter(grad), None


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


def gather_ghosts(g: torch.Tensor, comm: Comm) -> torch.Tensor:
    """All-gather every rank's ghost activations ``g`` (k x B, transposed so that the result is
    one (p k x B) GEMM operand) into ``p x k x B``; backward reduce-scatters the ``p x k x B``
    gradient so each rank gets the ``k x B`` sum for its own
    ghosts."""
    return _GatherGhosts.apply(g, comm)
