"""Parallel linear layers composed from the operators in :mod:`phantom_parallel.mappings`.

Notation: batch B, layer width n, p ranks, m = n / p neurons per rank, k ghosts per rank.

- :class:`ColumnParallelLinear`: rank owns ``out/p`` output rows; replicated input, sharded output.
- :class:`RowParallelLinear`: rank owns ``in/p`` input columns; sharded input, replicated output
  (one all-reduce of B x out), bias added after the sum.
- :class:`PhantomLinear`: phantom parallelism's hidden layer; sharded input and output, ranks
  exchange only ``k`` compressed "ghost" activations each (one all-gather of k x B).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from phantom_parallel.comm import Comm
from phantom_parallel.mappings import (
    copy_to_region,
    gather_ghosts,
    reduce_from_region,
    scatter_to_region,
)


class ColumnParallelLinear(nn.Module):
    """``y_r = x W[r]^T + b[r]``: x replicated (B x in), y sharded (B x out/p).

    Forward needs no communication; backward all-reduces the B x in input gradient (only when
    the input requires a gradient).
    """

    def __init__(self, in_features: int, out_features: int, comm: Comm, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if out_features % comm.world_size:
            raise ValueError(f"out_features={out_features} is not divisible by p={comm.world_size}")
        self.comm = comm
        self.in_features, self.out_features = in_features, out_features
        local = out_features // comm.world_size
        self.weight = nn.Parameter(torch.empty(local, in_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(local, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(copy_to_region(x, self.comm), self.weight, self.bias)


class RowParallelLinear(nn.Module):
    """``y = sum_r x_r W[:, r]^T + b``: x sharded (B x in/p), y replicated (B x out).

    Forward all-reduces the B x out partial products, then adds the (replicated) bias.
    With ``input_is_parallel=False`` a replicated input is first cut to this rank's slice
    (backward then all-gathers the slices' gradients).
    """

    def __init__(self, in_features: int, out_features: int, comm: Comm, *,
                 input_is_parallel: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if in_features % comm.world_size:
            raise ValueError(f"in_features={in_features} is not divisible by p={comm.world_size}")
        self.comm = comm
        self.in_features, self.out_features = in_features, out_features
        self.input_is_parallel = input_is_parallel
        local = in_features // comm.world_size
        self.weight = nn.Parameter(torch.empty(out_features, local, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.input_is_parallel:
            x = scatter_to_region(x, self.comm)
        return reduce_from_region(F.linear(x, self.weight), self.comm) + self.bias


class _AddPeerGhosts(torch.autograd.Function):
    """``z + sum_{s != r} g_s D_rs^T`` from the gathered ``(p k x B)`` ghosts ``G^T``.

    The peers' rows of ``G^T`` are the two row blocks around rank r's own ``k`` rows, and
    ``D_r``'s columns are the same blocks in the same order, so the contraction over all
    ``(p-1) k`` peer ghosts is at most two GEMMs whatever p is (one for ranks 0 and p-1).
    Backward writes both gradients straight into one buffer each (``mm(out=...)`` on the
    blocks); rank r's own rows of the ghost gradient are zero (its ghosts reach the other
    ranks only, and their gradients come back through the reduce-scatter).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, ghosts_t: torch.Tensor, decompress: torch.Tensor,
                rank: int, k: int) -> torch.Tensor:
        lo, hi, end = rank * k, (rank + 1) * k, ghosts_t.shape[0]
        # (rows of G^T, columns of D_r) of each peer block: before and after rank r's own
        blocks = [(slice(a, b), slice(c, d)) for a, b, c, d in
                  ((0, lo, 0, lo), (hi, end, lo, end - k)) if b > a]
        ctx.save_for_backward(ghosts_t, decompress)
        ctx.blocks, ctx.own = blocks, slice(lo, hi)
        for rows, cols in blocks:
            z = torch.addmm(z, ghosts_t[rows].t(), decompress[:, cols].t())
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ghosts_t, decompress = ctx.saved_tensors
        blocks, grad_t = ctx.blocks, grad.t()
        grad_ghosts = grad_decompress = None
        if ctx.needs_input_grad[1]:
            grad_ghosts = ghosts_t.new_empty(ghosts_t.shape)  # p k x B
            grad_ghosts[ctx.own].zero_()
            for rows, cols in blocks:
                torch.mm(decompress[:, cols].t(), grad_t, out=grad_ghosts[rows])
        if ctx.needs_input_grad[2] and len(blocks) == 1:  # m x (p-1) k
            grad_decompress = torch.mm(grad_t, ghosts_t[blocks[0][0]].t())
        elif ctx.needs_input_grad[2]:
            grad_decompress = decompress.new_empty(decompress.shape)
            for rows, cols in blocks:
                torch.mm(grad_t, ghosts_t[rows].t(), out=grad_decompress[:, cols])
        return grad, grad_ghosts, grad_decompress, None, None


def add_peer_ghosts(z: torch.Tensor, ghosts_t: torch.Tensor, decompress: torch.Tensor,
                    rank: int, k: int) -> torch.Tensor:
    """Decompress the peers' ghosts into rank ``rank``'s pre-activations.

    Args:
        z: B x m, this rank's local pre-activation ``h_r W_rr^T + b_r``.
        ghosts_t: p k x B, every rank's ghosts (rank-major row blocks of k).
        decompress: m x (p-1) k, ``D_r`` (the peers' blocks in rank order).
    Returns:
        B x m, ``z + sum_{s != r} g_s D_rs^T``.
    """
    return _AddPeerGhosts.apply(z, ghosts_t, decompress, rank, k)


class PhantomLinear(nn.Module):
    """Phantom layer: n -> n with ranks coupled only through k ghost neurons each.

    Parameters of rank r (m = n/p):

    - ``weight`` W_rr (m x m): local-to-local, exact;
    - ``compress`` C_r (k x m): this rank's m activations -> its k ghosts (linear);
    - ``decompress`` D_r (m x (p-1)k): [D_rs for s != r in rank order], the other ranks'
      ghosts -> this rank's m neurons;
    - ``bias`` b_r (m).

    Forward on h_r (B x m): g_r = h_r C_r^T (B x k), sent as g_r^T (k x B);
    G^T = all-gather(g^T) (p k x B); z_r = h_r W_rr^T + sum_{s != r} g_s D_rs^T + b_r (B x m),
    the sum being at most two GEMMs (:func:`add_peer_ghosts`), never a loop over peers. A rank's own ghosts do not feed
    its own neurons. Backward of the all-gather is a reduce-scatter (see
    :func:`phantom_parallel.mappings.gather_ghosts`); all weight gradients are local.
    With p = 1 there are no ghosts: the layer is dense (``compress``/``decompress`` are None).
    """

    def __init__(self, width: int, ghosts: int, comm: Comm, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        p = comm.world_size
        if width % p:
            raise ValueError(f"width n={width} is not divisible by p={p}")
        m = width // p
        if not 1 <= ghosts <= m:
            raise ValueError(f"ghosts k={ghosts} must satisfy 1 <= k <= m = n/p = {m}")
        self.comm, self.width, self.ghosts, self.local_width = comm, width, ghosts, m
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(m, m, **factory))
        self.bias = nn.Parameter(torch.empty(m, **factory))
        if p > 1:
            self.compress = nn.Parameter(torch.empty(ghosts, m, **factory))
            self.decompress = nn.Parameter(torch.empty(m, (p - 1) * ghosts, **factory))
        else:
            self.register_parameter("compress", None)
            self.register_parameter("decompress", None)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = F.linear(h, self.weight, self.bias)
        if self.compress is None:
            return z
        # Ghosts travel transposed: rank s sends g_s^T = C_s h_s^T (k x B), so the gathered
        # p x k x B buffer is the contiguous (p k x B) matrix [g_0^T; ...; g_{p-1}^T] and its
        # transpose is a GEMM operand as it stands: no copy of the gathered ghosts.
        ghosts_t = gather_ghosts(torch.mm(self.compress, h.t()), self.comm)
        return add_peer_ghosts(z, ghosts_t.view(-1, h.shape[0]), self.decompress,
                               self.comm.rank, self.ghosts)

    def extra_repr(self) -> str:
        return f"width={self.width}, local={self.local_width}, ghosts={self.ghosts}, p={self.comm.world_size}"
