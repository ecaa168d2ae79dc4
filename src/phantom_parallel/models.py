"""The plain FFN, parallel styles as data, and one ``build_model`` for every strategy.

The model code (:class:`FFN`) does not know how it is split. A *plan* maps each linear's name
(``input``, ``hidden.0`` .. ``hidden.{L-1}``, ``output``) to a style (:class:`Replicate`,
:class:`Colwise`, :class:`Rowwise`, :class:`Phantom`); :func:`parallelize` swaps each
``nn.Linear`` of a meta-device FFN for the materialised parallel layer, initialised from a seed
by the rules of :mod:`phantom_parallel.param_init`. Single-process references of the parallel
models are in :mod:`phantom_parallel.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from phantom_parallel.comm import Comm
from phantom_parallel.constants import STRATEGIES  # noqa: F401  (re-exported)
from phantom_parallel.layers import ColumnParallelLinear, PhantomLinear, RowParallelLinear
from phantom_parallel.layout import validate_layout  # re-exported: the one layout check
from phantom_parallel.param_init import PP_INITS, dense_init, phantom_init, shard_range

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
            rows = shard_range(out_f, comm.world_size, comm.rank)
        else:
            assert comm is not None
            layer = RowParallelLinear(in_f, out_f, comm, input_is_parallel=style.input_is_parallel, **f)
            cols = shard_range(in_f, comm.world_size, comm.rank)
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
