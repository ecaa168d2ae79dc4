"""Closed-form cost model for serial, tensor-parallel (TP) and phantom-parallel (PP) FFN training.

Everything here is *per optimizer step, per rank* unless a name says ``_total``. The model is the
FFN of ``docs/method.md``: ``d_in -> width (L hidden n x n layers) -> d_out`` with bias everywhere,
``p`` ranks, ``m = n / p`` neurons per rank and ``k`` ghosts per rank (PP only).

Units:

* FLOPs: matmul FLOPs exactly as :class:`torch.utils.flop_counter.FlopCounterMode` counts them,
  i.e. ``2 * B * a * b`` for a GEMM ``(B x a) @ (a x b)``; bias adds, activations, the loss and
  optimizer updates are *not* matmul FLOPs (a nominal elementwise estimate is reported apart).
* bytes: ``numel * elem_bytes``. *Payload* bytes are what the communication layer counts per
  collective call (all-reduce: the tensor; all-gather: the local input chunk; reduce-scatter: the
  full input of ``p`` chunks). *Wire* bytes are what one rank sends (= receives) under ring
  algorithms: all-reduce ``2 (p-1)/p * S``, all-gather ``(p-1) * chunk``, reduce-scatter
  ``(p-1)/p * input``.
* time: seconds; rates: FLOP/s and bytes/s; power: W; energy: J.

Main entry points: :class:`FFNShape`, :func:`predict` -> :class:`CostBreakdown`,
:class:`AlphaBeta`, :func:`predict_time`, :func:`calibrate`, :func:`recalibrate`,
:func:`project` and the
``phantom-costs`` CLI (:func:`main`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STRATEGIES: tuple[str, ...] = ("serial", "tp", "pp", "dtensor")
"""Strategy names accepted by :func:`predict` (``dtensor`` is costed exactly like ``tp``)."""

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
        if self.width % self.p != 0:
            raise ValueError(
                f"width n={self.width} is not divisible by p={self.p} (n % p = {self.width % self.p})"
            )

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


def _call(op: str, phase: str, layer: str, numel: int, shape: FFNShape) -> CommCall:
    payload = numel * shape.elem_bytes
    return CommCall(op, phase, layer, numel, payload, ring_wire_bytes(op, payload, shape.p))


# --------------------------------------------------------------------------------------------
# per-strategy layer lists
# --------------------------------------------------------------------------------------------


def _gemm(batch: int, a: int, b: int) -> int:
    """Matmul FLOPs of ``(batch x a) @ (a x b)``."""
    return 2 * batch * a * b


def _split_gemm(batch: int, inner: int, out: int, parts: int) -> tuple[tuple[int, int, int], ...]:
    """``(batch x inner) @ (inner x out)`` as ``parts`` GEMMs over near-equal slices of ``inner``."""
    sizes = [inner // parts + (1 if i < inner % parts else 0) for i in range(parts)]
    return tuple((batch, s, out) for s in sizes if s > 0)


def _linear(
    name: str,
    kind: str,
    shape: FFNShape,
    in_local: int,
    out_local: int,
    bias: int,
    bias_numel: int,
    input_needs_grad: bool = True,
) -> LayerCost:
    """A plain local linear ``(B x in_local) -> (B x out_local)`` with a bias of ``bias`` params
    applied to ``bias_numel`` output elements."""
    B = shape.batch
    f = _gemm(B, in_local, out_local)
    return LayerCost(
        name=name,
        kind=kind,
        flops_fwd=f,
        flops_bwd=f * (2 if input_needs_grad else 1),
        params=in_local * out_local + bias,
        saved_elems=B * in_local,
        elementwise_fwd=bias_numel,
        elementwise_bwd=bias_numel,
        matmuls_fwd=1,
        matmuls_bwd=2 if input_needs_grad else 1,
        param_tensors=2,
        gemms_fwd=((B, in_local, out_local),),
    )


def _layers_serial(shape: FFNShape) -> tuple[list[LayerCost], list[CommCall], list[int]]:
    n, B = shape.width, shape.batch
    layers = [_linear("input", "dense", shape, shape.d_in, n, n, B * n, input_needs_grad=False)]
    act = [B * n]  # pre-activation sizes (elements), one per activation
    for j in range(1, shape.layers + 1):
        layers.append(_linear(f"hidden{j}", "dense", shape, n, n, n, B * n))
        act.append(B * n)
    layers.append(_linear("output", "dense", shape, n, shape.d_out, shape.d_out, B * shape.d_out))
    return layers, [], act


def _layers_tp(shape: FFNShape) -> tuple[list[LayerCost], list[CommCall], list[int]]:
    n, m, B, p = shape.width, shape.m, shape.batch, shape.p
    comm = p > 1
    calls: list[CommCall] = []
    layers = [_linear("input", "column", shape, shape.d_in, m, m, B * m, input_needs_grad=False)]
    act = [B * m]
    for j in range(1, shape.layers + 1):
        name = f"hidden{j}"
        if j % 2 == 1:  # row-parallel: sharded input, all-reduce of B x n, bias after the sum
            layers.append(_linear(name, "row", shape, m, n, n, B * n))
            act.append(B * n)
            if comm:
                calls.append(_call("all_reduce", "fwd", name, B * n, shape))
        else:  # column-parallel: copy-to-region, backward all-reduce of the B x n input grad
            layers.append(_linear(name, "column", shape, n, m, m, B * m))
            act.append(B * m)
            if comm:
                calls.append(_call("all_reduce", "bwd", name, B * n, shape))
    if shape.layers % 2 == 1 and comm:  # replicated -> sharded before the output layer
        calls.append(_call("all_gather", "bwd", "scatter", B * m, shape))
    layers.append(_linear("output", "row", shape, m, shape.d_out, shape.d_out, B * shape.d_out))
    if comm:
        calls.append(_call("all_reduce", "fwd", "output", B * shape.d_out, shape))
    return layers, calls, act


def _layers_pp(shape: FFNShape) -> tuple[list[LayerCost], list[CommCall], list[int]]:
    m, B, p, k = shape.m, shape.batch, shape.p, shape.ghosts
    if p > 1:
        if k > m:
            raise ValueError(
                f"ghosts k={k} exceeds neurons per rank m={m} (n={shape.width}, p={p})"
            )
        if k < 1:
            raise ValueError(f"ghosts k={k} must be >= 1 for pp with p={p} > 1")
    calls: list[CommCall] = []
    layers = [_linear("input", "column", shape, shape.d_in, m, m, B * m, input_needs_grad=False)]
    act = [B * m]
    for j in range(1, shape.layers + 1):
        name = f"hidden{j}"
        if p == 1:
            layers.append(_linear(name, "phantom", shape, m, m, m, B * m))
        else:
            # g = h C^T (B x m -> k); z = h W^T + G_others D^T + b (B x m -> m, B x (p-1)k -> m)
            f = _gemm(B, m, k) + _gemm(B, m, m) + _gemm(B, (p - 1) * k, m)
            # the peers' ghosts are the row blocks before and after the rank's own: two
            # decompression GEMMs on the busiest rank (one on ranks 0 and p-1, so for p = 2)
            peer_gemms = min(p - 1, 2)
            layers.append(
                LayerCost(
                    name=name,
                    kind="phantom",
                    flops_fwd=f,
                    flops_bwd=2 * f,
                    params=m * m + k * m + m * (p - 1) * k + m,
                    saved_elems=B * m + B * p * k,  # h and the gathered ghosts
                    elementwise_fwd=B * m,
                    elementwise_bwd=B * m,
                    # local addmm, compress, the decompression GEMMs; 2 each backward
                    matmuls_fwd=2 + peer_gemms,
                    matmuls_bwd=2 * (2 + peer_gemms),
                    param_tensors=4,
                    gemms_fwd=((B, m, m), (B, m, k), *_split_gemm(B, (p - 1) * k, m, peer_gemms)),
                )
            )
            calls.append(_call("all_gather", "fwd", name, B * k, shape))
            calls.append(_call("reduce_scatter", "bwd", name, B * p * k, shape))
        act.append(B * m)
    layers.append(_linear("output", "row", shape, m, shape.d_out, shape.d_out, B * shape.d_out))
    if p > 1:
        calls.append(_call("all_reduce", "fwd", "output", B * shape.d_out, shape))
    return layers, calls, act


def _dense_params(shape: FFNShape) -> int:
    n, L = shape.width, shape.layers
    return shape.d_in * n + n + L * (n * n + n) + n * shape.d_out + shape.d_out


def _pp_params_total(shape: FFNShape) -> int:
    n, m, p, k, L = shape.width, shape.m, shape.p, shape.ghosts, shape.layers
    if p == 1:
        return _dense_params(shape)
    hidden = p * (m * m + k * m + m * (p - 1) * k + m)
    return shape.d_in * n + n + L * hidden + n * shape.d_out + shape.d_out


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------


def _check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    return strategy


def predict(
    strategy: str,
    shape: FFNShape,
    optimizer: str = "adam",
    activation: str = "tanh",
) -> CostBreakdown:
    """Closed-form costs of one training step (forward + backward) on one rank.

    Args:
        strategy: ``serial`` (needs ``p == 1``), ``tp``, ``dtensor`` (same costs as ``tp``) or
            ``pp``.
        shape: the FFN and batch; ``shape.width % shape.p == 0``; for PP with ``p > 1``,
            ``1 <= ghosts <= width / p``.
        optimizer: ``sgd`` (0 extra copies), ``momentum`` (1) or ``adam``/``adamw`` (2), used for
            :attr:`CostBreakdown.state_bytes`.
        activation: hidden activation, used only for the activation-memory estimate (GELU/SiLU
            save their input, tanh/ReLU/sigmoid their output = the next linear's input).

    Returns:
        :class:`CostBreakdown` with per-rank, per-step matmul FLOPs, collective calls, payload and
        wire bytes, parameters, activation and parameter-state memory (bytes).

    Raises:
        ValueError: unknown strategy/optimizer/activation, ``serial`` with ``p != 1``, or for PP
            ``ghosts > width / p`` or ``ghosts < 1`` with ``p > 1``.
    """
    _check_strategy(strategy)
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(
            f"unknown optimizer {optimizer!r}; expected one of {tuple(OPTIMIZER_STATES)}"
        )
    if activation not in _ACT_SAVES_INPUT:
        raise ValueError(
            f"unknown activation {activation!r}; expected one of {tuple(_ACT_SAVES_INPUT)}"
        )
    if strategy == "serial":
        if shape.p != 1:
            raise ValueError(f"strategy 'serial' needs p=1, got p={shape.p}")
        layers, calls, act = _layers_serial(shape)
        params_total = _dense_params(shape)
    elif strategy in ("tp", "dtensor"):
        layers, calls, act = _layers_tp(shape)
        params_total = _dense_params(shape)
    else:
        layers, calls, act = _layers_pp(shape)
        params_total = _pp_params_total(shape)

    fwd = sum(layer.flops_fwd for layer in layers)
    bwd = sum(layer.flops_bwd for layer in layers)
    # nominal elementwise FLOPs: bias add/grad per output element (in LayerCost) + activation
    # 1 FLOP/element forward, 2 backward.
    elementwise = sum(layer.elementwise_fwd + layer.elementwise_bwd for layer in layers)
    elementwise += 3 * sum(act)

    def count(phase: str | None) -> dict[str, int]:
        return {
            op: sum(1 for c in calls if c.op == op and (phase is None or c.phase == phase))
            for op in COLLECTIVES
        }

    def total(attr: str, phase: str | None) -> Any:
        return sum(getattr(c, attr) for c in calls if phase is None or c.phase == phase)

    params_per_rank = sum(layer.params for layer in layers)
    saved = sum(layer.saved_elems for layer in layers)
    if _ACT_SAVES_INPUT[activation]:
        saved += sum(act)
    activation_bytes = saved * shape.elem_bytes
    state_bytes = params_per_rank * shape.elem_bytes * (2 + OPTIMIZER_STATES[optimizer])
    return CostBreakdown(
        strategy=strategy,
        shape=shape,
        optimizer=optimizer,
        matmul_flops_fwd=fwd,
        matmul_flops_bwd=bwd,
        matmul_flops=fwd + bwd,
        matmul_flops_total=(fwd + bwd) * shape.p,
        elementwise_flops=elementwise,
        comm_calls=count(None),
        comm_calls_fwd=count("fwd"),
        comm_calls_bwd=count("bwd"),
        payload_bytes=total("payload_bytes", None),
        payload_bytes_fwd=total("payload_bytes", "fwd"),
        payload_bytes_bwd=total("payload_bytes", "bwd"),
        wire_bytes=float(total("wire_bytes", None)),
        wire_bytes_fwd=float(total("wire_bytes", "fwd")),
        wire_bytes_bwd=float(total("wire_bytes", "bwd")),
        params_per_rank=params_per_rank,
        params_total=params_total,
        params_stored_total=params_per_rank * shape.p,
        activation_bytes=activation_bytes,
        state_bytes=state_bytes,
        memory_bytes=activation_bytes + state_bytes,
        calls=tuple(calls),
        layers=tuple(layers),
        param_tensors_per_rank=sum(layer.param_tensors for layer in layers),
        matmul_calls=sum(layer.matmuls_fwd + layer.matmuls_bwd for layer in layers),
    )


def pp_break_even_ghosts(width: int, p: int) -> float:
    """Ghost count ``k* = m (p - 1) / p`` at which a PP hidden layer has the same parameters and
    matmul FLOPs as the dense/TP layer; PP is cheaper in both for ``k < k*``."""
    if width % p:
        raise ValueError(f"width n={width} is not divisible by p={p}")
    m = width // p
    return m * (p - 1) / p


# --------------------------------------------------------------------------------------------
# alpha-beta time model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaBeta:
    """Constants of the step-time model.

    ``t_step = sum_calls (alpha_op + wire_bytes / beta_bytes_per_s)
    + matmul_flops / flop_rate + matmul_calls * matmul_call_s
    (+ elementwise_flops / elementwise_rate if set)
    + param_elems * optimizer_s_per_element + param_tensors * optimizer_s_per_tensor``.

    The fields after ``elementwise_rate`` extend the original four-constant model; each defaults
    to ``None``, which leaves its term out (``alpha_<op>_s = None``: ``alpha_s`` for that op), so
    a four-constant :class:`AlphaBeta` predicts exactly what it always did.

    Attributes:
        alpha_s: latency per collective call, seconds.
        beta_bytes_per_s: ring bandwidth per rank, bytes/s (``inf`` = free bandwidth).
        flop_rate: sustained matmul rate per rank, FLOP/s.
        elementwise_rate: elementwise FLOP/s, or ``None`` to leave that term out.
        alpha_all_reduce_s, alpha_all_gather_s, alpha_reduce_scatter_s: latency per call of
            that collective, seconds (e.g. gloo's reduce-scatter costs more than one all-gather;
            calibrated in the pattern a step calls them: right after compute, peer wait included).
        matmul_call_s: fixed seconds per GEMM kernel (call overhead; matters at small widths).
        optimizer_s_per_element: optimizer step seconds per parameter element on this rank.
        optimizer_s_per_tensor: optimizer step seconds per parameter tensor on this rank (the
            per-tensor loop of e.g. ``torch.optim.Adam`` on CPU). Both belong to the optimizer
            they were calibrated with (:func:`calibrate_optimizer`).
    """

    alpha_s: float
    beta_bytes_per_s: float
    flop_rate: float
    elementwise_rate: float | None = None
    alpha_all_reduce_s: float | None = None
    alpha_all_gather_s: float | None = None
    alpha_reduce_scatter_s: float | None = None
    matmul_call_s: float | None = None
    optimizer_s_per_element: float | None = None
    optimizer_s_per_tensor: float | None = None

    def __post_init__(self) -> None:
        if self.alpha_s < 0 or not math.isfinite(self.alpha_s):
            raise ValueError(f"alpha_s must be finite and >= 0, got {self.alpha_s!r}")
        for name in ("alpha_all_reduce_s", "alpha_all_gather_s", "alpha_reduce_scatter_s",
                     "matmul_call_s", "optimizer_s_per_element", "optimizer_s_per_tensor"):
            v = getattr(self, name)
            if v is not None and (v < 0 or not math.isfinite(v)):
                raise ValueError(f"{name} must be finite and >= 0 or None, got {v!r}")
        if not self.beta_bytes_per_s > 0:
            raise ValueError(f"beta_bytes_per_s must be > 0, got {self.beta_bytes_per_s!r}")
        if not self.flop_rate > 0:
            raise ValueError(f"flop_rate must be > 0, got {self.flop_rate!r}")
        if self.elementwise_rate is not None and not self.elementwise_rate > 0:
            raise ValueError(f"elementwise_rate must be > 0 or None, got {self.elementwise_rate!r}")

    def alpha(self, op: str) -> float:
        """Latency per call of collective ``op`` (its own alpha if set, else ``alpha_s``)."""
        if op not in COLLECTIVES:
            raise ValueError(f"unknown collective {op!r}; expected one of {COLLECTIVES}")
        v = getattr(self, f"alpha_{op}_s")
        return self.alpha_s if v is None else v

    def to_dict(self) -> dict[str, float | None]:
        """JSON-serialisable dict (``inf`` bandwidth written as the string ``"inf"``)."""
        d = dataclasses.asdict(self)
        return {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlphaBeta:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown AlphaBeta fields {sorted(unknown)}")
        vals = {k: (None if v is None else float(v)) for k, v in d.items()}
        return cls(**vals)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TimeBreakdown:
    """Predicted seconds per step (per rank; ranks are symmetric so also the step time)."""

    comm_s: float
    compute_s: float
    elementwise_s: float
    total_s: float
    optimizer_s: float = 0.0
    """Optimizer step (0 unless the constants have optimizer terms); included in ``total_s``."""
    matmul_overhead_s: float = 0.0
    """Part of ``compute_s`` that is per-GEMM call overhead (``matmul_calls * matmul_call_s``)."""


def predict_time(cost: CostBreakdown, constants: AlphaBeta) -> TimeBreakdown:
    """Alpha-beta step time of one :class:`CostBreakdown` (no overlap of compute and comm).

    With only the four original constants: ``calls * alpha + wire / beta + flops / rate
    (+ elementwise)``. The optional constants of :class:`AlphaBeta` add per-op latencies, a
    per-GEMM overhead and the optimizer step (see its docstring).
    """
    comm = sum(constants.alpha(op) * n for op, n in cost.comm_calls.items())
    comm += cost.wire_bytes / constants.beta_bytes_per_s
    overhead = cost.matmul_calls * (constants.matmul_call_s or 0.0)
    compute = cost.matmul_flops / constants.flop_rate + overhead
    elem = (
        cost.elementwise_flops / constants.elementwise_rate
        if constants.elementwise_rate is not None
        else 0.0
    )
    opt = (cost.params_per_rank * (constants.optimizer_s_per_element or 0.0)
           + cost.param_tensors_per_rank * (constants.optimizer_s_per_tensor or 0.0))
    return TimeBreakdown(comm, compute, elem, comm + compute + elem + opt, opt, overhead)


def _weighted_nnls(columns: Sequence[Sequence[float]], times: Sequence[float]) -> list[float]:
    """Non-negative least squares of ``times ~ columns @ x`` with each row weighted by
    ``1 / time`` (relative errors: small and large measurements count alike)."""
    from scipy.optimize import nnls

    a = np.asarray(columns, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if a.ndim != 2 or len(t) != a.shape[0] or len(t) == 0:
        raise ValueError("need at least one row, and one time per row")
    if not np.all(t > 0):
        raise ValueError("times must be > 0")
    w = 1.0 / t
    x, _ = nnls(a * w[:, None], t * w)
    return [float(v) for v in x]


def calibrate_collectives(rows: Iterable[Sequence[Any]]) -> dict[str, float]:
    """Per-op latency and one shared bandwidth from ``(op, seconds, wire_bytes)`` rows.

    Fits ``seconds = alpha_op + wire_bytes / beta`` (NNLS, rows weighted by 1/time) with one
    ``alpha`` per collective present in the rows. Time the rows in the pattern a training step
    calls them (each call right after compute on all ranks) so that ``alpha_op`` includes the
    wait for the slower peer and the wake-up.

    Returns:
        ``{"alpha_<op>_s": ..., "beta_bytes_per_s": ...}`` (``inf`` bandwidth when the fitted
        ``1/beta`` is 0), ready for ``dataclasses.replace(constants, **result)``.
    """
    data = [(str(r[0]), float(r[1]), float(r[2])) for r in rows]
    for op, _, _ in data:
        if op not in COLLECTIVES:
            raise ValueError(f"unknown collective {op!r}; expected one of {COLLECTIVES}")
    ops = [op for op in COLLECTIVES if any(r[0] == op for r in data)]
    cols = [[1.0 if op == o else 0.0 for o in ops] + [wire] for op, _, wire in data]
    x = _weighted_nnls(cols, [t for _, t, _ in data])
    out = {f"alpha_{op}_s": v for op, v in zip(ops, x[:-1], strict=True)}
    out["beta_bytes_per_s"] = math.inf if x[-1] <= 0 else 1.0 / x[-1]
    return out


def calibrate_matmul(rows: Iterable[Sequence[float]]) -> tuple[float, float]:
    """``(flop_rate, matmul_call_s)`` from ``(seconds, flops)`` rows of single GEMMs:
    ``seconds = flops / flop_rate + matmul_call_s`` (NNLS, rows weighted by 1/time).

    When the GEMMs are too small for a FLOP-proportional term to show (the fit's ``1/rate`` is
    0), falls back to the rate through the origin and no per-call overhead."""
    data = [(float(t), float(f)) for t, f in rows]
    if not any(f > 0 for _, f in data):
        raise ValueError("need at least one GEMM row with flops > 0")
    inv_rate, call = _weighted_nnls([[f, 1.0] for _, f in data], [t for t, _ in data])
    if inv_rate <= 0:
        return sum(f * f for _, f in data) / sum(t * f for t, f in data), 0.0
    return 1.0 / inv_rate, call


def calibrate_optimizer(rows: Iterable[Sequence[float]]) -> tuple[float, float]:
    """``(optimizer_s_per_element, optimizer_s_per_tensor)`` from ``(seconds, param_elements,
    param_tensors)`` rows, each the time of one optimizer step over a set of parameter tensors:
    ``seconds = elements * s_elem + tensors * s_tensor`` (NNLS, rows weighted by 1/time)."""
    data = [(float(t), float(e), float(n)) for t, e, n in rows]
    s_elem, s_tensor = _weighted_nnls([[e, n] for _, e, n in data], [t for t, _, _ in data])
    return s_elem, s_tensor


def calibrate(
    comm_rows: Iterable[Sequence[float]],
    compute_rows: Iterable[Sequence[float]],
    elementwise_rate: float | None = None,
) -> AlphaBeta:
    """Fit :class:`AlphaBeta` to measured runs by non-negative least squares.

    Args:
        comm_rows: ``(comm_time_s, calls, wire_bytes)`` per measurement (e.g. per step or per run
            mean); fits ``comm_time = alpha * calls + wire_bytes / beta`` with ``alpha, 1/beta >= 0``.
            May be empty (then ``alpha = 0`` and ``beta = inf``).
        compute_rows: ``(compute_time_s, matmul_flops)``; fits ``compute_time = flops / flop_rate``
            through the origin. Must contain at least one row with ``flops > 0`` and time > 0.
        elementwise_rate: passed through to the result.

    Returns:
        The fitted constants (``beta = inf`` when the fitted ``1/beta`` is 0).
    """
    comm = [tuple(float(v) for v in r) for r in comm_rows]
    comp = [tuple(float(v) for v in r) for r in compute_rows]
    for r in comm:
        if len(r) != 3:
            raise ValueError(f"comm row must be (comm_time_s, calls, wire_bytes), got {r!r}")
    for r in comp:
        if len(r) != 2:
            raise ValueError(f"compute row must be (compute_time_s, matmul_flops), got {r!r}")
    if comm:
        from scipy.optimize import nnls

        solution, _ = nnls(
            np.asarray([[r[1], r[2]] for r in comm], dtype=np.float64),
            np.asarray([r[0] for r in comm], dtype=np.float64),
        )
        alpha, inv_beta = (float(v) for v in solution)
    else:
        alpha, inv_beta = 0.0, 0.0
    num = sum(t * f for t, f in comp)
    den = sum(f * f for _, f in comp)
    if den <= 0 or num <= 0:
        raise ValueError("compute_rows need at least one row with flops > 0 and time > 0")
    return AlphaBeta(
        alpha_s=alpha,
        beta_bytes_per_s=math.inf if inv_beta <= 0 else 1.0 / inv_beta,
        flop_rate=den / num,
        elementwise_rate=elementwise_rate,
    )


@dataclass(frozen=True)
class Recalibration:
    """Constants re-calibrated on one measured run, and the three factors applied.

    Attributes:
        constants: the re-calibrated :class:`AlphaBeta`.
        comm_scale: measured / predicted communication seconds (multiplies every alpha and
            ``1 / beta``).
        compute_scale: measured / predicted non-communication, non-optimizer seconds (multiplies
            ``1 / flop_rate``, ``matmul_call_s`` and ``1 / elementwise_rate``).
        optimizer_scale: measured / predicted optimizer seconds (multiplies both optimizer
            constants); ``None`` when the optimizer was folded into ``compute_scale``.
    """

    constants: AlphaBeta
    comm_scale: float
    compute_scale: float
    optimizer_scale: float | None


def recalibrate(
    constants: AlphaBeta,
    cost: CostBreakdown,
    *,
    comm_s: float,
    compute_s: float,
    optimizer_s: float | None = None,
) -> Recalibration:
    """Re-calibrate ``constants`` on one measured run so that they reproduce its phases.

    The model's structure is kept; each group of constants is scaled by one factor, measured /
    predicted for the run whose ``cost`` is given:

    * communication (``alpha_*``, ``1 / beta``) by ``comm_s / predicted comm``;
    * compute (``1 / flop_rate``, ``matmul_call_s``, ``1 / elementwise_rate``) by
      ``compute_s / predicted (matmul + elementwise)``;
    * optimizer (``optimizer_s_per_element``, ``optimizer_s_per_tensor``) by
      ``optimizer_s / predicted optimizer``.

    ``predict_time(cost, result.constants)`` then returns the measured ``comm_s``,
    ``compute_s`` (as ``compute_s + elementwise_s``) and ``optimizer_s``. Used on one strategy's
    run (e.g. TP) it carries the machine's in-situ costs (allocator, caches, framework ops, the
    wait in a collective) that microbenchmarks miss, to predict another strategy out of sample.

    Args:
        constants: microbenchmark constants (the extended model).
        cost: :func:`predict` of the measured run's strategy and shape.
        comm_s: measured communication seconds per step (the ledger's).
        compute_s: measured seconds per step that are neither communication nor the optimizer
            step (with ``optimizer_s=None``: everything but communication).
        optimizer_s: measured optimizer-step seconds per step, or ``None`` to fold the
            optimizer into ``compute_s`` (then both optimizer constants take ``compute_scale``).

    Raises:
        ValueError: a measured time is negative or not finite, or a predicted phase the
            measurement must scale is zero (e.g. ``comm_s > 0`` for a run with no collectives).
    """
    for name, v in (("comm_s", comm_s), ("compute_s", compute_s), ("optimizer_s", optimizer_s)):
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    t = predict_time(cost, constants)

    def factor(measured: float, predicted: float, what: str) -> float:
        if predicted > 0:
            return measured / predicted
        if measured == 0:
            return 1.0
        raise ValueError(f"cannot re-calibrate {what}: measured {measured!r} s but the model "
                         f"predicts 0 s for {cost.strategy} (no such term in the constants)")

    comm = factor(comm_s, t.comm_s, "communication")
    if optimizer_s is None:
        compute = factor(compute_s, t.compute_s + t.elementwise_s + t.optimizer_s, "compute")
        opt = compute
    else:
        compute = factor(compute_s, t.compute_s + t.elementwise_s, "compute")
        opt = factor(optimizer_s, t.optimizer_s, "optimizer")

    def scaled(v: float | None, f: float) -> float | None:
        return None if v is None else v * f

    def rate(v: float | None, f: float) -> float | None:
        if v is None:
            return None
        return math.inf if f == 0 else v / f

    new = dataclasses.replace(
        constants,
        alpha_s=constants.alpha_s * comm,
        alpha_all_reduce_s=scaled(constants.alpha_all_reduce_s, comm),
        alpha_all_gather_s=scaled(constants.alpha_all_gather_s, comm),
        alpha_reduce_scatter_s=scaled(constants.alpha_reduce_scatter_s, comm),
        beta_bytes_per_s=rate(constants.beta_bytes_per_s, comm),
        flop_rate=rate(constants.flop_rate, compute),
        matmul_call_s=scaled(constants.matmul_call_s, compute),
        elementwise_rate=rate(constants.elementwise_rate, compute),
        optimizer_s_per_element=scaled(constants.optimizer_s_per_element, opt),
        optimizer_s_per_tensor=scaled(constants.optimizer_s_per_tensor, opt),
    )
    return Recalibration(new, comm, compute, None if optimizer_s is None else opt)


def project(
    strategy: str,
    shape: FFNShape,
    ps: Iterable[int],
    constants: AlphaBeta,
    power_w: float,
    ghosts: int | Callable[[int, int], int] | None = None,
    scaling: str = "strong",
    optimizer: str = "adam",
) -> list[dict[str, Any]]:
    """Predicted time and energy per step for several rank counts.

    Args:
        strategy: as for :func:`predict` (``serial`` only with ``p = 1``).
        shape: template shape; its ``p`` and ``ghosts`` are replaced per row.
        ps: rank counts, e.g. ``[1, 2, 4, ..., 256, 1024]``.
        constants: calibrated :class:`AlphaBeta`.
        power_w: mean power per device while training, W.
        ghosts: ``k`` per rank: an int, a callable ``(p, m) -> k``, or ``None`` for
            ``shape.ghosts``.
        scaling: ``strong`` (``width`` fixed, ``m = n / p`` shrinks) or ``weak``
            (``m = shape.width / shape.p`` fixed, ``n = m p`` grows).
        optimizer: passed to :func:`predict`.

    Returns:
        One dict per ``p``: shape, ``time_s``, ``comm_s``, ``compute_s``, ``energy_j``
        (``= p * power_w * time_s``, all devices), ``matmul_flops``, ``wire_bytes``, ``params_total``.

    Raises:
        ValueError: as :func:`predict` (e.g. ``width % p != 0`` or ``k > m``), or bad ``scaling``.
    """
    if scaling not in ("strong", "weak"):
        raise ValueError(f"unknown scaling {scaling!r}; expected 'strong' or 'weak'")
    if power_w < 0:
        raise ValueError(f"power_w must be >= 0, got {power_w!r}")
    m0 = shape.width // shape.p
    rows = []
    for p in ps:
        width = shape.width if scaling == "strong" else m0 * p
        if width % p:
            raise ValueError(f"width n={width} is not divisible by p={p}")
        m = width // p
        if ghosts is None:
            k = shape.ghosts
        elif callable(ghosts):
            k = int(ghosts(p, m))
        else:
            k = int(ghosts)
        s = shape.replace(p=p, width=width, ghosts=k if p > 1 else 0)
        cost = predict(strategy, s, optimizer=optimizer)
        t = predict_time(cost, constants)
        rows.append(
            {
                "strategy": strategy,
                "p": p,
                "width": width,
                "m": m,
                "ghosts": s.ghosts if strategy == "pp" else 0,
                "time_s": t.total_s,
                "comm_s": t.comm_s,
                "compute_s": t.compute_s,
                "energy_j": p * power_w * t.total_s,
                "matmul_flops": cost.matmul_flops,
                "wire_bytes": cost.wire_bytes,
                "params_total": cost.params_total,
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


_DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``phantom-costs``."""
    ap = argparse.ArgumentParser(
        prog="phantom-costs",
        description="Closed-form per-rank, per-step costs (matmul FLOPs, collective calls, "
        "payload/wire bytes, parameters, memory; optionally alpha-beta time and energy) of "
        "serial / TP / PP FFN training. Lists give a grid (cartesian product); invalid grid "
        "points (n % p != 0, k > m) are skipped with a note on stderr.",
    )
    ap.add_argument("--strategy", nargs="+", default=["tp", "pp"], choices=STRATEGIES)
    ap.add_argument("--width", nargs="+", type=int, default=[1024], help="hidden width n")
    ap.add_argument("--layers", nargs="+", type=int, default=[4], help="hidden n x n layers L")
    ap.add_argument("--p", nargs="+", type=int, default=[1, 2, 4, 8], help="ranks")
    ap.add_argument("--ghosts", nargs="+", type=int, default=[32], help="PP ghosts per rank k")
    ap.add_argument("--batch", nargs="+", type=int, default=[64])
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--d-out", type=int, default=8)
    ap.add_argument("--dtype", choices=sorted(_DTYPE_BYTES), default="float32")
    ap.add_argument("--optimizer", choices=sorted(OPTIMIZER_STATES), default="adam")
    ap.add_argument("--activation", choices=sorted(_ACT_SAVES_INPUT), default="tanh")
    ap.add_argument("--alpha", type=float, help="latency per collective, s (enables time columns)")
    ap.add_argument("--beta", type=float, help="bandwidth per rank, bytes/s")
    ap.add_argument("--flop-rate", type=float, help="matmul FLOP/s per rank")
    ap.add_argument("--constants", help="JSON file with AlphaBeta fields (from calibrate)")
    ap.add_argument("--power-w", type=float, help="power per device, W (adds energy_j column)")
    ap.add_argument("--strict", action="store_true", help="fail on invalid grid points")
    ap.add_argument("--format", choices=("csv", "json"), default="csv")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-costs`` entry point: print one row per (strategy, grid point);
    ``phantom-costs project ...`` runs :func:`phantom_parallel.projection.main`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["project"]:
        from phantom_parallel.projection import main as project_main

        return project_main(argv[1:])
    args = build_parser().parse_args(argv)
    constants: AlphaBeta | None = None
    if args.constants:
        with open(args.constants) as fh:
            constants = AlphaBeta.from_dict(json.load(fh))
    elif any(v is not None for v in (args.alpha, args.beta, args.flop_rate)):
        if args.flop_rate is None:
            print("phantom-costs: --flop-rate is required with --alpha/--beta", file=sys.stderr)
            return 2
        constants = AlphaBeta(
            alpha_s=args.alpha or 0.0,
            beta_bytes_per_s=args.beta if args.beta is not None else math.inf,
            flop_rate=args.flop_rate,
        )
    elem = _DTYPE_BYTES[args.dtype]
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for strategy, width, layers, batch, p, k in itertools.product(
        args.strategy, args.width, args.layers, args.batch, args.p, args.ghosts
    ):
        if strategy == "serial":
            p = 1
        if strategy != "pp" or p == 1:
            k = 0
        key = (strategy, width, layers, batch, p, k)
        if key in seen:
            continue
        seen.add(key)
        try:
            shape = FFNShape(args.d_in, width, layers, args.d_out, batch, p, k, elem)
            cost = predict(strategy, shape, optimizer=args.optimizer, activation=args.activation)
        except ValueError as exc:
            if args.strict:
                print(f"phantom-costs: {strategy}: {exc}", file=sys.stderr)
                return 2
            print(f"phantom-costs: skipping {strategy}: {exc}", file=sys.stderr)
            continue
        row = cost.row()
        if constants is not None:
            t = predict_time(cost, constants)
            row.update(comm_s=t.comm_s, compute_s=t.compute_s, time_s=t.total_s)
            if args.power_w is not None:
                row["energy_j"] = p * args.power_w * t.total_s
        rows.append(row)
    if not rows:
        print("phantom-costs: no valid grid point", file=sys.stderr)
        return 2
    sys.stdout.write(_table(rows, args.format))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
