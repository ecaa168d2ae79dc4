"""Seeded, rank-local initialisation of every layer's parameters (dense and phantom).

Initialisation (fan-in aware, the rule of ``nn.Linear``): every weight and bias of an output
neuron is drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) where fan_in is the number of inputs
that neuron sees. Dense layers: fan_in = in_features; the (out x in) weight is cut into square
tiles of :data:`INIT_TILE` (edge tiles clipped), tile (i, j) drawn from its own generator keyed
by (seed, layer name, i, j), the bias likewise in tiles of the same length. The tile size does
not depend on p, so every rank draws only the tiles that meet its own shard (init time and host
memory per rank fall as 1/p) and serial, TP (any p) and DTensor start from bit-identical
weights. Phantom layers (``pp_init``, see ``docs/method.md``): "variance" (default) draws
W_rr and b_r from U(-1/sqrt(n), 1/sqrt(n)) like the dense layer, C_r from U(-sqrt(3/m),
sqrt(3/m)) (Var C = 1/m: a ghost has the second moment of an activation) and D_r from
U(-1/sqrt(pk), 1/sqrt(pk)), so the pre-activation variance and its cross-rank share (p-1)/p
equal the dense layer's for any p and k; "fan-in" (the old rule) draws W_rr, D_r and b_r with
fan_in = m + (p-1)k and C_r with fan_in = m. Drawn per (seed, layer name, p, rank), in the same
order under both rules (the two differ by one scale per tensor). With p = 1 a phantom layer is
dense and uses the dense rule, so PP with p = 1 equals serial for the same seed.
"""

from __future__ import annotations

import hashlib
import math

import torch

from phantom_parallel.layout import own_ghosts, reads_all_ghosts


def _generator(*key: object) -> torch.Generator:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    gen_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    return (torch.rand(shape, generator=gen, dtype=gen_dtype) * 2 - 1).mul_(bound).to(dtype)


INIT_TILE = 64  # side of a dense layer's init tile (elements); must not depend on p


def _tiled_uniform(key: tuple[object, ...], shape: tuple[int, int], rows: range, cols: range,
                   bound: float, dtype: torch.dtype, tile: int = INIT_TILE,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``rows`` x columns ``cols`` of a ``shape`` matrix of U(-bound, bound) whose tile
    (i, j) comes from the generator of ``(*key, i, j)``; only the tiles meeting the block are
    drawn. Written into ``out`` (len(rows) x len(cols), any device; default a new CPU tensor)
    one band of tile rows at a time, so the host holds at most one band beyond ``out``."""
    if out is None:
        out = torch.empty(len(rows), len(cols), dtype=dtype)
    direct = out.device.type == "cpu"
    for i in range(rows.start // tile, -(-rows.stop // tile)):
        r0, r1 = i * tile, min((i + 1) * tile, shape[0])
        a, b = max(r0, rows.start), min(r1, rows.stop)
        band = out[a - rows.start : b - rows.start] if direct else \
            torch.empty(b - a, len(cols), dtype=dtype)
        for j in range(cols.start // tile, -(-cols.stop // tile)):
            c0, c1 = j * tile, min((j + 1) * tile, shape[1])
            c, d = max(c0, cols.start), min(c1, cols.stop)
            t = _uniform((r1 - r0, c1 - c0), bound, _generator(*key, i, j), dtype)
            band[:, c - cols.start : d - cols.start] = t[a - r0 : b - r0, c - c0 : d - c0]
        if not direct:
            out[a - rows.start : b - rows.start].copy_(band)
    return out


def dense_init(seed: int, name: str, out_features: int, in_features: int, dtype: torch.dtype, *,
               rows: range | None = None, cols: range | None = None, tile: int = INIT_TILE,
               out: tuple[torch.Tensor, torch.Tensor] | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Block ``rows`` x ``cols`` (default: all) of dense layer ``name``'s (out x in) weight and
    the ``rows`` of its bias; the same values whatever block is asked for. Written into
    ``out`` = (weight, bias) when given (e.g. a layer's parameters, on any device), else into
    new CPU tensors."""
    rows = range(out_features) if rows is None else rows
    cols = range(in_features) if cols is None else cols
    bound = 1.0 / math.sqrt(in_features)
    w_out, b_out = out if out is not None else (None, None)
    w = _tiled_uniform(("dense", seed, name, "weight"), (out_features, in_features), rows, cols,
                       bound, dtype, tile, w_out)
    b = _tiled_uniform(("dense", seed, name, "bias"), (out_features, 1), rows, range(1), bound,
                       dtype, tile, None if b_out is None else b_out.view(-1, 1))
    return w, b[:, 0]


def shard_range(size: int, p: int, rank: int) -> range:
    """Rank ``rank``'s contiguous 1/p of ``range(size)`` (the layout of ``Tensor.chunk``)."""
    part = size // p
    return range(rank * part, (rank + 1) * part)


PP_INITS = ("variance", "fan-in")
"""Phantom-layer initialisation rules (``build_model(..., pp_init=...)``); the first is the default."""


def phantom_bounds(width: int, ghosts: int, p: int, rule: str = "variance") -> dict[str, float]:
    """Uniform bounds a (U(-a, a)) of a phantom layer's ``weight`` (W_rr), ``decompress`` (D_r),
    ``bias`` (b_r) and ``compress`` (C_r) for width n, k ghosts per rank and p > 1 ranks.

    "variance": E[z^2] = E[h^2]/3 + 1/(3n), the dense layer's, with (p-1)/p of the h-term from
    the other ranks; "fan-in": nn.Linear's rule with fan_in m + (p-1)k (m for C)."""
    if rule not in PP_INITS:
        raise ValueError(f"pp_init={rule!r}: choose one of {', '.join(PP_INITS)}")
    m = width // p
    if rule == "fan-in":
        a = 1.0 / math.sqrt(m + (p - 1) * ghosts)
        return {"weight": a, "decompress": a, "bias": a, "compress": 1.0 / math.sqrt(m)}
    a = 1.0 / math.sqrt(width)
    return {"weight": a, "decompress": 1.0 / math.sqrt(p * ghosts), "bias": a,
            "compress": math.sqrt(3.0 / m)}


def phantom_init(seed: int, name: str, width: int, ghosts: int, p: int, rank: int,
                 dtype: torch.dtype, rule: str = "variance") -> dict[str, torch.Tensor]:
    """Rank ``rank``'s parameters of phantom layer ``name``: ``weight`` (m x m), ``decompress``
    (m x pk: the peers' (p-1)k columns drawn, rank ``rank``'s own k columns zero; m x k with
    p = 2), ``bias`` (m), ``compress`` (k x m); only ``weight`` and ``bias`` (the dense rule) when p = 1.
    ``rule``: one of :data:`PP_INITS` (see :func:`phantom_bounds`)."""
    if p == 1:
        w, b = dense_init(seed, name, width, width, dtype)
        return {"weight": w, "bias": b}
    m, k = width // p, ghosts
    gen = _generator("phantom", seed, name, p, rank)
    a = phantom_bounds(width, ghosts, p, rule)
    shapes = {"weight": (m, m), "decompress": (m, (p - 1) * k), "bias": (m,), "compress": (k, m)}
    out = {key: _uniform(shape, a[key], gen, dtype) for key, shape in shapes.items()}
    if reads_all_ghosts(p):
        own, peers = own_ghosts(rank, k), out["decompress"]
        out["decompress"] = torch.cat((peers[:, :own.start], peers.new_zeros(m, k),
                                       peers[:, own.start:]), 1)
    return out


def peer_columns(decompress: torch.Tensor, rank: int, p: int, ghosts: int) -> torch.Tensor:
    """D_r without its own block, the inverse of :func:`phantom_init`'s layout: the m x (p-1)k
    peers' columns of rank ``rank``'s ``decompress`` (m x pk with p > 2; with p = 2 it has only
    the peer's). Raises ValueError if the own block D_rr, which the layer holds at zero, is not
    zero (an optimizer that moves a parameter whose gradient is zero would make it nonzero)."""
    if not reads_all_ghosts(p):
        return decompress
    own = own_ghosts(rank, ghosts)
    if torch.count_nonzero(decompress[:, own]):
        raise ValueError(f"rank {rank}'s decompress has nonzero entries in its own ghost "
                         f"columns {own.start}:{own.stop}, which a phantom layer holds at zero")
    return torch.cat((decompress[:, :own.start], decompress[:, own.stop:]), 1)
