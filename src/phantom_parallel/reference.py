"""Single-process references of the parallel models (float64 checks): :class:`PhantomReference`
(all ranks' phantom blocks in one process) and :func:`gather_reference` (a trained, sharded
model's weights gathered into its reference on every rank)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from phantom_parallel.comm import Comm
from phantom_parallel.layers import ColumnParallelLinear, PhantomLinear, RowParallelLinear
from phantom_parallel.models import FFN, FFNConfig, layer_names, parallelize, serial_plan
from phantom_parallel.param_init import peer_columns, phantom_init


class PhantomReference(nn.Module):
    """Single-process reference of a p-rank PP model: the same parameters (all ranks' blocks),
    the same maths, no communication. forward: x (B x d_in) -> y (B x d_out).

    The blocks are zero unless ``seed`` is given: then every rank's block is drawn as
    :func:`build_model` ("pp", ``seed``, ``pp_init``) draws it (input/output layers: seed 0)."""

    def __init__(self, cfg: FFNConfig, p: int, ghosts: int, *, dtype: torch.dtype = torch.float64,
                 seed: int | None = None, pp_init: str = "variance") -> None:
        super().__init__()
        self.cfg, self.p, self.ghosts = cfg, p, ghosts
        outer = FFNConfig(cfg.d_in, cfg.width, 0, cfg.d_out, cfg.activation)  # no hidden layers
        with torch.device("meta"):
            dense = FFN(outer)
        dense = parallelize(dense, serial_plan(outer), None, seed=0, dtype=dtype)
        self.input, self.output, self.act = dense.input, dense.output, dense.act
        m = cfg.width // p
        self.blocks = nn.ModuleList()
        for i in range(cfg.layers):
            ranks = nn.ModuleList()
            for r in range(p):
                mod = nn.Module()
                mod.weight = nn.Parameter(torch.zeros(m, m, dtype=dtype))
                mod.bias = nn.Parameter(torch.zeros(m, dtype=dtype))
                if p > 1:
                    mod.compress = nn.Parameter(torch.zeros(ghosts, m, dtype=dtype))
                    mod.decompress = nn.Parameter(torch.zeros(m, (p - 1) * ghosts, dtype=dtype))
                if seed is not None:
                    with torch.no_grad():
                        for key, t in phantom_init(seed, f"hidden.{i}", cfg.width, ghosts, p, r,
                                                   dtype, pp_init).items():
                            getattr(mod, key).copy_(peer_columns(t, r, p, ghosts)
                                                    if key == "decompress" else t)
                ranks.append(mod)
            self.blocks.append(ranks)

    def preactivation_parts(self, layer: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                      torch.Tensor]:
        """Hidden layer ``layer``'s pre-activation z = local + cross + bias for its input h
        (B x n): ``local`` (B x n, sum_r of h_r W_rr^T placed in block r), ``cross`` (B x n, the
        ghosts of the other ranks, g_s D_rs^T; zero when p = 1) and ``bias`` (n)."""
        ranks, p = self.blocks[layer], self.p
        hs = h.chunk(p, dim=-1)
        local = torch.cat([hs[r] @ ranks[r].weight.t() for r in range(p)], dim=-1)
        bias = torch.cat([ranks[r].bias for r in range(p)])
        if p == 1:
            return local, torch.zeros_like(local), bias
        g = [hs[r] @ ranks[r].compress.t() for r in range(p)]
        cross = []
        for r in range(p):
            others = torch.cat([g[s] for s in range(p) if s != r], dim=-1)
            cross.append(others @ ranks[r].decompress.t())
        return local, torch.cat(cross, dim=-1), bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.input(x))
        for i in range(len(self.blocks)):
            local, cross, bias = self.preactivation_parts(i, h)
            h = self.act(local + cross + bias)
        return self.output(h)


def _all_gather_parts(t: torch.Tensor, comm: Comm) -> list[torch.Tensor]:
    """Every rank's ``t``, in rank order (not training traffic: not counted in the ledger)."""
    parts = [torch.empty_like(t) for _ in range(comm.world_size)]
    dist.all_gather(parts, t.contiguous(), group=comm.group)
    return parts


def _all_gather_cat(t: torch.Tensor, dim: int, comm: Comm) -> torch.Tensor:
    return torch.cat(_all_gather_parts(t, comm), dim=dim)


def gather_reference(model: nn.Module, strategy: str, comm: Comm | None, *, ghosts: int | None = None,
                     dtype: torch.dtype = torch.float64) -> nn.Module:
    """Gather a (possibly sharded) model's weights into its single-process reference, on every
    rank: a dense :class:`FFN` for serial/tp/dtensor, a :class:`PhantomReference` for pp."""
    cfg: FFNConfig = model.cfg  # type: ignore[assignment]
    if strategy == "pp":
        assert comm is not None and ghosts is not None
        ref: nn.Module = PhantomReference(cfg, comm.world_size, ghosts, dtype=dtype)
    else:
        with torch.device("meta"):
            ref = FFN(cfg)
        ref = parallelize(ref, serial_plan(cfg), None, seed=0, dtype=dtype)
    with torch.no_grad():
        for name in layer_names(cfg):
            src = model.get_submodule(name)
            if isinstance(src, PhantomLinear):
                i = int(name.split(".")[1])
                for key, t in src.named_parameters(recurse=False):
                    for r, part in enumerate(_all_gather_parts(t.detach(), comm)):  # type: ignore[arg-type]
                        if key == "decompress":
                            part = peer_columns(part, r, comm.world_size, ghosts)  # type: ignore[arg-type,union-attr]
                        getattr(ref.blocks[i][r], key).copy_(part)  # type: ignore[index]
                continue
            dst = ref.get_submodule(name)
            w, b = src.weight.detach(), src.bias.detach()
            if isinstance(src, ColumnParallelLinear):
                w, b = _all_gather_cat(w, 0, comm), _all_gather_cat(b, 0, comm)  # type: ignore[arg-type]
            elif isinstance(src, RowParallelLinear):
                w = _all_gather_cat(w, 1, comm)  # type: ignore[arg-type]
            elif hasattr(w, "full_tensor"):  # DTensor
                w, b = w.full_tensor(), b.full_tensor()
            dst.weight.copy_(w)
            dst.bias.copy_(b)
    return ref
