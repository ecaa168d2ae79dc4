"""The plain FFN, parallel styles as data, and one ``build_model`` for every strategy.

The model code (:class:`FFN`) does not know how it is split. A *plan* maps each linear's name
(``input``, ``hidden.0`` .. ``hidden.{L-1}``, ``output``) to a style (:class:`Replicate`,
:class:`Colwise`, :class:`Rowwise`, :class:`Phantom`); :func:`parallelize` swaps each
``nn.Linear`` of a meta-device FFN for the materialised parallel layer, initialised from a seed.

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
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from phantom_parallel.comm import Comm
from phantom_parallel.constants import STRATEGIES  # noqa: F401  (re-exported)
from phantom_parallel.layers import ColumnParallelLinear, PhantomLinear, RowParallelLinear
from phantom_parallel.layout import validate_layout  # re-exported: the one layout check

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class FFNConfig:
    """Shape of the FFN: d_in -> n (input) -> L hidden n -> n layers -> d_out (output)."""

    d_in: int
    width: int
    layers: int
    d_out: int
    activation: str = "gelu"

    def __post_init__(self) -> None:
        for key in ("d_in", "width", "d_out"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
        if self.layers < 0:
            raise ValueError(f"layers={self.layers} must be >= 0")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: choose one of {sorted(ACTIVATIONS)}")


class FFN(nn.Module):
    """Plain FFN; forward maps x (B x d_in) to y (B x d_out)."""

    def __init__(self, cfg: FFNConfig, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.cfg = cfg
        self.input = nn.Linear(cfg.d_in, cfg.width, **f)
        self.hidden = nn.ModuleList(nn.Linear(cfg.width, cfg.width, **f) for _ in range(cfg.layers))
        self.output = nn.Linear(cfg.width, cfg.d_out, **f)
        self.act = ACTIVATIONS[cfg.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.input(x))
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.output(h)


# ----------------------------------------------------------------------------- styles (data)
@dataclass(frozen=True)
class Replicate:
    """Every rank holds the whole layer (serial)."""


@dataclass(frozen=True)
class Colwise:
    """Shard output rows: replicated input, sharded output."""


@dataclass(frozen=True)
class Rowwise:
    """Shard input columns: sharded (or, if not ``input_is_parallel``, replicated) input,
    replicated output after one all-reduce."""

    input_is_parallel: bool = True


@dataclass(frozen=True)
class Phantom:
    """Phantom layer with ``ghosts`` ghost neurons per rank (sharded input and output)."""

    ghosts: int


Style = Replicate | Colwise | Rowwise | Phantom
Plan = dict[str, Style]


def layer_names(cfg: FFNConfig) -> list[str]:
    return ["input", *(f"hidden.{i}" for i in range(cfg.layers)), "output"]


def tensor_parallel_plan(cfg: FFNConfig) -> Plan:
    """Megatron-style plan: input column-parallel, hidden layers alternate row (odd j) and
    column (even j), output row-parallel (cutting a replicated input to its slice when L is
    odd)."""
    plan: Plan = {"input": Colwise()}
    for i in range(cfg.layers):
        plan[f"hidden.{i}"] = Rowwise() if i % 2 == 0 else Colwise()
    plan["output"] = Rowwise(input_is_parallel=cfg.layers % 2 == 0)
    return plan


def phantom_plan(cfg: FFNConfig, ghosts: int) -> Plan:
    """PP plan: activations stay sharded; every hidden layer is a phantom layer."""
    plan: Plan = {"input": Colwise()}
    plan.update({f"hidden.{i}": Phantom(ghosts) for i in range(cfg.layers)})
    plan["output"] = Rowwise()
    return plan


def serial_plan(cfg: FFNConfig) -> Plan:
    return dict.fromkeys(layer_names(cfg), Replicate())


# ----------------------------------------------------------------------------- initialisation
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


def _shard(size: int, p: int, rank: int) -> range:
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
    (m x (p-1)k), ``bias`` (m), ``compress`` (k x m); only ``weight`` and ``bias`` (the dense
    rule) when p = 1. ``rule``: one of :data:`PP_INITS` (see :func:`phantom_bounds`)."""
    if p == 1:
        w, b = dense_init(seed, name, width, width, dtype)
        return {"weight": w, "bias": b}
    m = width // p
    gen = _generator("phantom", seed, name, p, rank)
    a = phantom_bounds(width, ghosts, p, rule)
    shapes = {"weight": (m, m), "decompress": (m, (p - 1) * ghosts), "bias": (m,),
              "compress": (ghosts, m)}
    return {key: _uniform(shape, a[key], gen, dtype) for key, shape in shapes.items()}


# ----------------------------------------------------------------------------- materialise
def _materialize(name: str, linear: nn.Linear, style: Style, comm: Comm | None, seed: int,
                 device: torch.device, dtype: torch.dtype, pp_init: str = "variance") -> nn.Module:
    out_f, in_f = linear.out_features, linear.in_features
    f = {"device": device, "dtype": dtype}
    if isinstance(style, Phantom):
        assert comm is not None and out_f == in_f
        layer: nn.Module = PhantomLinear(out_f, style.ghosts, comm, **f)
        tensors = phantom_init(seed, name, out_f, style.ghosts, comm.world_size, comm.rank, dtype,
                               pp_init)
    else:
        rows = cols = None
        if isinstance(style, Replicate):
            layer = nn.Linear(in_f, out_f, **f)
        elif isinstance(style, Colwise):
            assert comm is not None
            layer = ColumnParallelLinear(in_f, out_f, comm, **f)
            rows = _shard(out_f, comm.world_size, comm.rank)
        else:
            assert comm is not None
            layer = RowParallelLinear(in_f, out_f, comm, input_is_parallel=style.input_is_parallel, **f)
            cols = _shard(in_f, comm.world_size, comm.rank)
        with torch.no_grad():  # straight into the parameters: no second host copy of the shard
            dense_init(seed, name, out_f, in_f, dtype, rows=rows, cols=cols,
                       out=(layer.weight, layer.bias))
        return layer
    with torch.no_grad():
        for key, value in tensors.items():
            getattr(layer, key).copy_(value)
    return layer


def parallelize(model: FFN, plan: Plan, comm: Comm | None, *, seed: int,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                pp_init: str = "variance") -> FFN:
    """Replace each linear of ``model`` (typically on the meta device) by its styled,
    initialised layer (phantom layers by rule ``pp_init``). Returns ``model``."""
    device = torch.device(device)
    for name in layer_names(model.cfg):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = parent.get_submodule(child)
        layer = _materialize(name, linear, plan[name], comm, seed, device, dtype, pp_init)
        parent.register_module(child, layer)
    return model


def build_model(strategy: str, cfg: FFNConfig, comm: Comm | None = None, *, ghosts: int | None = None,
                seed: int = 0, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, pp_init: str = "variance") -> nn.Module:
    """One way to build the model of any strategy on this rank.

    Args:
        strategy: "serial" (one process, dense), "tp" (our Megatron-style operators), "pp"
            (phantom layers with ``ghosts`` per rank), "dtensor" (dense FFN parallelised by
            ``torch.distributed.tensor.parallel.parallelize_module``), "fsdp" (dense FFN, data
            parallel, parameters sharded by ``torch.distributed.fsdp.fully_shard``: each linear
            and the root; with no process group the dense FFN itself).
        cfg: the FFN shape. comm: the group (``None``: "serial", or "tp"/"pp" on one process
            with no process group, which compute the dense FFN).
        pp_init: initialisation rule of phantom layers, one of :data:`PP_INITS` ("variance":
            the dense layer's pre-activation variance for any p, k; "fan-in": the old rule).
    """
    if pp_init not in PP_INITS:
        raise ValueError(f"pp_init={pp_init!r}: choose one of {', '.join(PP_INITS)}")
    if comm is None and strategy in ("tp", "pp"):
        comm = Comm()  # no process group: one rank, every collective is the identity
    world_size = 1 if comm is None else comm.world_size
    validate_layout(strategy, cfg.width, world_size, ghosts)
    with torch.device("meta"):
        model = FFN(cfg)
    if strategy not in ("tp", "pp"):  # the dense FFN
        model = parallelize(model, serial_plan(cfg), comm, seed=seed, device=device, dtype=dtype)
        if strategy == "fsdp":
            return _fsdp_shard(model, comm)
        return _dtensor_parallelize(model, comm) if strategy == "dtensor" else model
    assert comm is not None
    plan = tensor_parallel_plan(cfg) if strategy == "tp" else phantom_plan(cfg, ghosts or 0)
    return parallelize(model, plan, comm, seed=seed, device=device, dtype=dtype, pp_init=pp_init)


def _fsdp_shard(model: FFN, comm: Comm | None) -> FFN:
    """FSDP2: every linear, then the root, sharded over all ranks (dim 0 of each parameter).
    Gradients are averaged over ranks, so each rank feeds its own rows of the global batch."""
    if comm is None or comm.world_size == 1:
        return model  # one rank: nothing to shard, the dense FFN
    if not dist.is_initialized():
        raise ValueError("strategy 'fsdp' needs a process group (torch.distributed)")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    device_type = next(model.parameters()).device.type
    mesh = init_device_mesh(device_type, (comm.world_size,))
    for name in layer_names(model.cfg):
        fully_shard(model.get_submodule(name), mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _dtensor_parallelize(model: FFN, comm: Comm | None) -> FFN:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate as DReplicate
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    if comm is None:
        raise ValueError("strategy 'dtensor' needs a process group (comm)")
    device_type = next(model.parameters()).device.type
    mesh = init_device_mesh(device_type, (comm.world_size,))
    dplan: dict[str, object] = {}
    for name, style in tensor_parallel_plan(model.cfg).items():
        if isinstance(style, Colwise):
            dplan[name] = ColwiseParallel()
        elif style.input_is_parallel:  # type: ignore[union-attr]
            dplan[name] = RowwiseParallel()
        else:
            dplan[name] = RowwiseParallel(input_layouts=DReplicate())
    return parallelize_module(model, mesh, dplan)  # type: ignore[arg-type,return-value]


# ----------------------------------------------------------------------------- references
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
                            getattr(mod, key).copy_(t)
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
