"""Parallel linear layers composed from the operators in :mod:`phantom_parallel.mappings`.

Notation: batch B, layer width n, p ranks, m = n / p neurons per rank, k ghosts per rank.

- :class:`ColumnParallelLinear`: rank owns ``out/p`` output rows; replicated input, sharded output.
- :class:`RowParallelLinear`: rank owns ``in/p`` input columns; sharded input, replicated output
  (one all-reduce of B x out), bias added after the sum.
- :class:`PhantomLinear`: phantom parallelism's hidden layer; sharded input and output, ranks
  exchange only ``k`` compressed "ghost" activations each (one all-gather of B x k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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


class PhantomLinear(nn.Module):
    """Phantom layer: n -> n with ranks coupled only through k ghost neurons each.

    Parameters of rank r (m = n/p):

    - ``weight`` W_rr (m x m): local-to-local, exact;
    - ``compress`` C_r (k x m): this rank's m activations -> its k ghosts (linear);
    - ``decompress`` D_r (m x (p-1)k): [D_rs for s != r in rank order], the other ranks'
      ghosts -> this rank's m neurons;
    - ``bias`` b_r (m).

    Forward on h_r (B x m): g_r = h_r C_r^T (B x k); G = all-gather(g) (p x B x k);
    z_r = h_r W_rr^T + sum_{s != r} g_s D_rs^T + b_r (B x m). A rank's own ghosts do not feed
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
        r, k = self.comm.rank, self.ghosts
        ghosts = gather_ghosts(F.linear(h, self.compress), self.comm)  # p x B x k
        # z += sum_{s != r} g_s D_rs^T, one addmm per peer on views: no cat/permute/reshape
        # copies of the gathered ghosts (unbind's backward stacks the peers' gradients straight
        # into the p x B x k layout the reduce-scatter takes). Same GEMMs as (B x (p-1)k) @
        # ((p-1)k x m): the (p-1) blocks of the contraction, accumulated into z.
        peers = [g for s, g in enumerate(ghosts.unbind(0)) if s != r]
        if len(peers) == 1:
            return torch.addmm(z, peers[0], self.decompress.t())
        for j, g in enumerate(peers):
            z = torch.addmm(z, g, self.decompress[:, j * k : (j + 1) * k].t())
        return z

    def extra_repr(self) -> str:
        return f"width={self.width}, local={self.local_width}, ghosts={self.ghosts}, p={self.comm.world_size}"
