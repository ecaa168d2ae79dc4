"""Shapes and result types of the closed-form cost counts (:mod:`phantom_parallel.costs`).

Everything is *per optimizer step, per rank* unless a name says ``_total``. Units:

* FLOPs: matmul FLOPs exactly as :class:`torch.utils.flop_counter.FlopCounterMode` counts them,
  i.e. ``2 * B * a * b`` for a GEMM ``(B x a) @ (a x b)``; bias adds, activations, the loss and
  optimizer updates are *not* matmul FLOPs (a nominal elementwise estimate is reported apart).
* bytes: ``numel * elem_bytes``. *Payload* bytes are what the communication layer counts per
  collective call (all-reduce: the tensor; all-gather: the local input chunk; reduce-scatter: the
  full input of ``p`` chunks). *Wire* bytes are what one rank sends (= receives) under ring
  algorithms: all-reduce ``2 (p-1)/p * S``, all-gather ``(p-1) * chunk``, reduce-scatter
  ``(p-1)/p * input``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from phantom_parallel import constants
from phantom_parallel.layout import validate_layout

STRATEGIES: tuple[str, ...] = tuple(s for s in constants.STRATEGIES if s != "fsdp")
"""Strategy names accepted by :func:`predict`: all but ``fsdp`` (``dtensor`` is costed exactly
like ``tp``)."""

COLLECTIVES: tuple[str, ...] = ("all_reduce", "all_gather", "reduce_scatter")
"""Collective names used as keys of :attr:`CostBreakdown.comm_calls`."""

OPTIMIZER_STATES: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""Extra parameter-sized copies each optimizer keeps (Adam: exp_avg + exp_avg_sq)."""

# Activations whose autograd node saves its *input* (an extra tensor besides the next linear's
# saved input); the others save their output, which is the next linear's input (shared storage).
_ACT_SAVES_INPUT: dict[str, bool] = {
    "tanh": False,
    "sigmoid": False,
    "relu": False,
    "gelu": True,
    "silu": True,
    "identity": False,
}


# --------------------------------------------------------------------------------------------
# shapes and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FFNShape:
    """Shape of one FFN training step.

    Attributes:
        d_in: input features.
        width: hidden width ``n`` (neurons per hidden layer, all ranks together).
        layers: ``L``, the number of ``n x n`` hidden->hidden weight layers (``L + 2`` linears).
        d_out: output features.
        batch: ``B``, rows per step (every rank sees the whole batch).
        p: number of ranks (1 for serial).
        ghosts: ``k``, ghost neurons per rank (PP only; ignored by serial/TP).
        elem_bytes: bytes per element (4 float32, 8 float64, 2 bf16/fp16).
    """

    d_in: int
    width: int
    layers: int
    d_out: int
    batch: int
    p: int = 1
    ghosts: int = 0
    elem_bytes: int = 4

    def __post_init__(self) -> None:
        for name in ("d_in", "width", "d_out", "batch", "p", "elem_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"FFNShape.{name} must be a positive int, got {value!r}")
        for name in ("layers", "ghosts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"FFNShape.{name} must be a non-negative int, got {value!r}")
        validate_layout("tp", self.width, self.p, None)  # n % p == 0 (ghosts: by predict)

    @property
    def m(self) -> int:
        """Neurons per rank, ``n / p``."""
        return self.width // self.p

    @property
    def k(self) -> int:
        """Ghosts per rank (alias of :attr:`ghosts`)."""
        return self.ghosts

    def replace(self, **changes: Any) -> FFNShape:
        """A copy with some fields changed (re-validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CommCall:
    """One collective call of one step on one rank.

    ``numel`` is the number of elements the payload is counted on (see module docstring);
    ``payload_bytes = numel * elem_bytes``; ``wire_bytes`` is what this rank sends under a ring.
    """

    op: str
    phase: str  # "fwd" or "bwd"
    layer: str  # e.g. "hidden3", "output", "scatter"
    numel: int
    payload_bytes: int
    wire_bytes: float


@dataclass(frozen=True)
class LayerCost:
    """Per-rank cost of one linear layer (including its ghost/comm GEMMs for PP).

    FLOPs are matmul FLOPs (FlopCounterMode convention); ``params`` counts weights + bias stored on
    this rank; ``saved_elems`` the elements saved for backward by the linear(s) of this layer.
    """

    name: str
    kind: str
    flops_fwd: int
    flops_bwd: int
    params: int
    saved_elems: int
    elementwise_fwd: int
    elementwise_bwd: int
    matmuls_fwd: int = 0
    matmuls_bwd: int = 0
    param_tensors: int = 0
    gemms_fwd: tuple[tuple[int, int, int], ...] = ()
    """Forward GEMMs of this layer on this rank as ``(M, K, N)``: ``(M x K) @ (K x N)``; each
    has a dgrad ``(M, N, K)`` and a wgrad ``(K, M, N)`` backward (no dgrad for the input layer,
    see ``matmuls_bwd``). Read by :mod:`phantom_parallel.timing` for per-shape efficiency."""


@dataclass(frozen=True)
class CostBreakdown:
    """Predicted costs of one training step (forward + backward), per rank unless ``_total``.

    FLOPs in matmul FLOPs; bytes in bytes; ``comm_calls`` maps a collective name
    (``all_reduce``, ``all_gather``, ``reduce_scatter``) to the number of calls per step.
    """

    strategy: str
    shape: FFNShape
    optimizer: str
    matmul_flops_fwd: int
    matmul_flops_bwd: int
    matmul_flops: int
    matmul_flops_total: int
    elementwise_flops: int
    comm_calls: dict[str, int]
    comm_calls_fwd: dict[str, int]
    comm_calls_bwd: dict[str, int]
    payload_bytes: int
    payload_bytes_fwd: int
    payload_bytes_bwd: int
    wire_bytes: float
    wire_bytes_fwd: float
    wire_bytes_bwd: float
    params_per_rank: int
    params_total: int
    params_stored_total: int
    activation_bytes: int
    state_bytes: int
    memory_bytes: int
    calls: tuple[CommCall, ...] = field(repr=False)
    layers: tuple[LayerCost, ...] = field(repr=False)
    param_tensors_per_rank: int = 0
    """Parameter tensors on this rank (weights and biases; a PP hidden layer has 4: weight,
    bias, compress, decompress; a dense/TP one 2). What a per-tensor optimizer loop iterates."""
    matmul_calls: int = 0
    """GEMM kernels per step on this rank (forward + backward; a linear with bias is one addmm
    forward, dgrad + wgrad backward, no dgrad for the input layer)."""

    @property
    def n_comm_calls(self) -> int:
        """Total collective calls per step per rank."""
        return sum(self.comm_calls.values())

    def row(self) -> dict[str, Any]:
        """Flat dict (one CSV/JSON row): shape fields, then all scalar costs."""
        s = self.shape
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "d_in": s.d_in,
            "width": s.width,
            "layers": s.layers,
            "d_out": s.d_out,
            "batch": s.batch,
            "p": s.p,
            "m": s.m,
            "ghosts": s.ghosts if self.strategy == "pp" and s.p > 1 else 0,
            "elem_bytes": s.elem_bytes,
            "optimizer": self.optimizer,
            "matmul_flops_fwd": self.matmul_flops_fwd,
            "matmul_flops_bwd": self.matmul_flops_bwd,
            "matmul_flops": self.matmul_flops,
            "matmul_flops_total": self.matmul_flops_total,
            "elementwise_flops": self.elementwise_flops,
            "comm_calls": self.n_comm_calls,
        }
        for op in COLLECTIVES:
            out[f"calls_{op}"] = self.comm_calls[op]
        out.update(
            payload_bytes=self.payload_bytes,
            payload_bytes_fwd=self.payload_bytes_fwd,
            payload_bytes_bwd=self.payload_bytes_bwd,
            wire_bytes=self.wire_bytes,
            wire_bytes_fwd=self.wire_bytes_fwd,
            wire_bytes_bwd=self.wire_bytes_bwd,
            params_per_rank=self.params_per_rank,
            params_total=self.params_total,
            params_stored_total=self.params_stored_total,
            activation_bytes=self.activation_bytes,
            state_bytes=self.state_bytes,
            memory_bytes=self.memory_bytes,
            param_tensors_per_rank=self.param_tensors_per_rank,
            matmul_calls=self.matmul_calls,
        )
        return out


# --------------------------------------------------------------------------------------------
# collectives
# --------------------------------------------------------------------------------------------


def ring_wire_bytes(op: str, payload_bytes: float, p: int) -> float:
    """Bytes one rank sends (= receives) for one ring collective.

    Args:
        op: ``all_reduce``, ``all_gather`` or ``reduce_scatter``.
        payload_bytes: payload as counted (all-reduce: tensor; all-gather: local chunk;
            reduce-scatter: full input of ``p`` chunks), in bytes.
        p: number of ranks.
    """
    if p == 1:
        return 0.0
    if op == "all_reduce":
        return 2.0 * (p - 1) / p * payload_bytes
    if op == "all_gather":
        return float((p - 1) * payload_bytes)
    if op == "reduce_scatter":
        return (p - 1) / p * payload_bytes
    raise ValueError(f"unknown collective {op!r}; expected one of {COLLECTIVES}")
