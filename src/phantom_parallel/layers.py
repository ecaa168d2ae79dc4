"""Parallel linear layers: TP's composed from the operators in :mod:`phantom_parallel.mappings`,
the phantom layer as one autograd Function that includes its collectives.

Notation: batch B, layer width n, p ranks, m = n / p neurons per rank, k ghosts per rank.

- :class:`ColumnParallelLinear`: rank owns ``out/p`` output rows; replicated input, sharded output.
- :class:`RowParallelLinear`: rank owns ``in/p`` input columns; sharded input, replicated output
  (one all-reduce of B x out), bias added after the sum.
- :class:`PhantomLinear`: phantom parallelism's hidden layer; sharded input and output, ranks
  exchange only ``k`` compressed "ghost" activations each (one all-gather of k x B forward,
  its adjoint, one reduce-scatter of p x k x B, backward).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from phantom_parallel.comm import Comm
from phantom_parallel.layout import own_ghosts, reads_all_ghosts, validate_layout
from phantom_parallel.mappings import (
    copy_to_region,
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


class _PhantomLinear(torch.autograd.Function):
    """One phantom layer, forward and backward, its collectives included.

    Like Megatron-LM's ``LinearWithGradAccumulationAndAsyncCommunication``, the layer's GEMMs
    and its one collective per direction are a single autograd node: on an accelerator, at
    p = 64-256 the layer's GEMMs are small (m = n/p) and the eager step is bound by the host's
    per-operator cost, so the layer issues only the kernels it needs, the same on every rank
    (forward: 3 GEMMs and the all-gather; backward: 6 GEMMs, one bias sum, one fill (p = 2: and
    an allocation) and the reduce-scatter) and no autograd bookkeeping between them.

    Shapes (rank r): h B x m, weight m x m, bias m, compress k x m, gathered ghosts G^T pk x B,
    decompress m x pk with its own k columns D_rr held at zero (p = 2: m x k, the peer's). The
    decompression is one GEMM over G^T: with p > 2 all of its rows, D_rr = 0 cancelling rank
    r's own ghosts forward and zeroing its rows of dL/dG^T backward (2Bmk more FLOPs each way,
    no copy); with p = 2 the one peer's k rows.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                compress: torch.Tensor, decompress: torch.Tensor, layer: PhantomLinear,
                ) -> torch.Tensor:
        z = torch.addmm(bias, h, weight.t())                               # B x m
        # ghosts travel transposed (k x B): the rank-major p x k x B all-gather output is the
        # contiguous (p k x B) matrix G^T, a GEMM operand as it stands (no copy)
        ghosts_t = layer.comm.all_gather(torch.mm(compress, h.t())).view(-1, h.shape[0])
        read = ghosts_t if layer.reads_all else ghosts_t.narrow(0, layer.peer_row, layer.ghosts)
        torch.addmm(z, read.t(), decompress.t(), out=z)                    # in place
        ctx.save_for_backward(h, weight, compress, decompress, ghosts_t)
        ctx.layer = layer
        return z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, weight, compress, decompress, ghosts_t = ctx.saved_tensors
        layer, grad_t = ctx.layer, grad.t()
        own, k = layer.own_rows.start, layer.ghosts
        # dL/dG^T (p k x B): the peers' rows are D_rs^T dz_r^T; rank r's own rows are zero (its
        # ghosts do not feed its own neurons); the reduce-scatter sums each rank's rows
        if layer.reads_all:  # the own rows come out zero from D_rr = 0
            grad_ghosts_t = torch.mm(decompress.t(), grad_t)
            grad_decompress = torch.mm(grad_t, ghosts_t.t())                 # m x p k
            grad_decompress.narrow(1, own, k).zero_()  # D_rr is held at zero
        else:  # p = 2: the peer's rows are one block, the own rows outside it
            grad_ghosts_t = ghosts_t.new_empty(ghosts_t.shape)
            grad_ghosts_t.narrow(0, own, k).zero_()
            torch.mm(decompress.t(), grad_t, out=grad_ghosts_t.narrow(0, layer.peer_row, k))
            grad_decompress = torch.mm(grad_t, ghosts_t.narrow(0, layer.peer_row, k).t())  # m x k
        grad_own_t = layer.comm.reduce_scatter(
            grad_ghosts_t.view(layer.comm.world_size, -1, grad.shape[0]))  # k x B
        grad_h = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.mm(grad, weight)                                   # B x m
            torch.addmm(grad_h, grad_own_t.t(), compress, out=grad_h)
        return (grad_h, torch.mm(grad_t, h), grad.sum(0), torch.mm(grad_own_t, h),
                grad_decompress, None)


class PhantomLinear(nn.Module):
    """Phantom layer: n -> n with ranks coupled only through k ghost neurons each.

    Parameters of rank r (m = n/p):

    - ``weight`` W_rr (m x m): local-to-local, exact;
    - ``compress`` C_r (k x m): this rank's m activations -> its k ghosts (linear);
    - ``decompress`` D_r (m x pk): [D_rs for every rank s in rank order], the gathered ghosts
      -> this rank's m neurons, with D_rr = 0 (a rank's own ghosts do not feed its own
      neurons): its k columns :attr:`own_rows` are held at zero (their gradient is zero, so
      SGD and Adam(W) leave them zero; :attr:`held_zero`). With p = 2, m x k: D_rs of the
      one peer s (no zero block);
    - ``bias`` b_r (m).

    Forward on h_r (B x m): g_r = h_r C_r^T (B x k), sent as g_r^T (k x B);
    G^T = all-gather(g^T) (p k x B); z_r = h_r W_rr^T + sum_{s != r} g_s D_rs^T + b_r (B x m),
    the sum being one GEMM over G^T on every rank, never a loop over peers
    (:class:`_PhantomLinear`). Backward of the all-gather is a reduce-scatter of p x k x B;
    all weight gradients are local. With p = 1 there are no ghosts: the layer is dense
    (``compress``/``decompress`` are None).
    """

    def __init__(self, width: int, ghosts: int, comm: Comm, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        p = comm.world_size
        validate_layout("pp", width, p, ghosts)
        m = width // p
        self.comm, self.width, self.ghosts, self.local_width = comm, width, ghosts, m
        factory = {"device": device, "dtype": dtype}
        # rows of G^T the decompression GEMM reads (and D_r's columns): all p k with p > 2
        # (:func:`~phantom_parallel.layout.reads_all_ghosts`), rank r's own against D_rr = 0;
        # with p = 2 the one peer's k, from row peer_row (narrowed, not indexed: the layer
        # dispatches no view it does not need)
        r, k = comm.rank, ghosts
        self.own_rows = own_ghosts(r, k)
        self.reads_all = reads_all_ghosts(p)
        self.peer_row = (1 - r) * k if p == 2 else 0
        self.weight = nn.Parameter(torch.empty(m, m, **factory))
        self.bias = nn.Parameter(torch.empty(m, **factory))
        if p > 1:
            self.compress = nn.Parameter(torch.empty(ghosts, m, **factory))
            columns = (p if self.reads_all else p - 1) * ghosts
            self.decompress = nn.Parameter(torch.empty(m, columns, **factory))
        else:
            self.register_parameter("compress", None)
            self.register_parameter("decompress", None)

    @property
    def held_zero(self) -> int:
        """Elements of this rank's parameters held at zero (D_rr, m x k, with p > 2; else 0)."""
        return self.local_width * self.ghosts if self.reads_all else 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.compress is None:
            return F.linear(h, self.weight, self.bias)
        return _PhantomLinear.apply(h, self.weight, self.bias, self.compress, self.decompress, self)

    def extra_repr(self) -> str:
        return f"width={self.width}, local={self.local_width}, ghosts={self.ghosts}, p={self.comm.world_size}"
