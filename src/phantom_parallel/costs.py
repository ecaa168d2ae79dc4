"""Closed-form cost counts of serial, tensor-parallel (TP) and phantom-parallel (PP) FFN training.

The FFN of ``docs/method.md``: ``d_in -> width (L hidden n x n layers) -> d_out`` with bias
everywhere, ``p`` ranks, ``m = n / p`` neurons per rank and ``k`` ghosts per rank (PP only).
:func:`predict` counts per rank and step: matmul FLOPs, the GEMM shapes, collective calls with
payload and ring wire bytes, parameters and memory (units in :mod:`phantom_parallel.cost_types`,
whose names are re-exported here). Time and energy are modelled from these counts by
:mod:`phantom_parallel.timing` on a hardware profile (:mod:`phantom_parallel.hardware`); the
projection is :mod:`phantom_parallel.projection`; the ``phantom-costs`` CLI is
:mod:`phantom_parallel.costs_cli` (the ``phantom-costs`` console script).
"""

from __future__ import annotations

from typing import Any

from phantom_parallel.cost_types import (
    _ACT_SAVES_INPUT,
    COLLECTIVES,
    OPTIMIZER_STATES,
    STRATEGIES,
    CommCall,
    CostBreakdown,
    FFNShape,
    LayerCost,
    ring_wire_bytes,
)
from phantom_parallel.layout import reads_all_ghosts, validate_layout


def _call(op: str, phase: str, layer: str, numel: int, shape: FFNShape) -> CommCall:
    payload = numel * shape.elem_bytes
    return CommCall(op, phase, layer, numel, payload, ring_wire_bytes(op, payload, shape.p))


# --------------------------------------------------------------------------------------------
# per-strategy layer lists
# --------------------------------------------------------------------------------------------


def _gemm(batch: int, a: int, b: int) -> int:
    """Matmul FLOPs of ``(batch x a) @ (a x b)``."""
    return 2 * batch * a * b


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
    """PP's layers on any rank (all do the same work): with p > 2 the decompression GEMM reads
    all p k gathered ghost rows, the own k against D_r's zero block
    (:func:`~phantom_parallel.layout.reads_all_ghosts`), with p = 2 the peer's k."""
    m, B, p, k = shape.m, shape.batch, shape.p, shape.ghosts
    calls: list[CommCall] = []
    layers = [_linear("input", "column", shape, shape.d_in, m, m, B * m, input_needs_grad=False)]
    act = [B * m]
    reads_all = reads_all_ghosts(p)
    rows = p * k if reads_all else (p - 1) * k  # ghost rows the decompression GEMM reads
    for j in range(1, shape.layers + 1):
        name = f"hidden{j}"
        if p == 1:
            layers.append(_linear(name, "phantom", shape, m, m, m, B * m))
        else:
            # g = h C^T (B x m -> k); z = h W^T + G D^T + b (B x m -> m, B x rows -> m)
            f = _gemm(B, m, k) + _gemm(B, m, m) + _gemm(B, rows, m)
            layers.append(
                LayerCost(
                    name=name,
                    kind="phantom",
                    flops_fwd=f,
                    flops_bwd=2 * f,
                    # stored: D_r with its zero block D_rr when p > 2
                    params=m * m + k * m + m * rows + m,
                    saved_elems=B * m + B * p * k,  # h and the gathered ghosts
                    elementwise_fwd=B * m,
                    # bias gradient; the zero fill of D_rr's gradient (m x k; p = 2: of the
                    # own rows of dL/dG^T, k x B)
                    elementwise_bwd=B * m + (m * k if reads_all else B * k),
                    # local addmm, compress, decompress; 2 each backward
                    matmuls_fwd=3,
                    matmuls_bwd=6,
                    param_tensors=4,
                    gemms_fwd=((B, m, m), (B, m, k), (B, rows, m)),
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
    """Closed-form costs of one training step (forward + backward) on one rank (every rank of
    a strategy does the same work; ``matmul_flops_total`` sums the p ranks).

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
    if not (strategy == "pp" and shape.p == 1):  # pp on one rank: the dense FFN, no ghosts
        validate_layout(strategy, shape.width, shape.p, shape.ghosts if strategy == "pp" else None)
    if strategy == "serial":
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
    flops_total = (fwd + bwd) * shape.p
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
        matmul_flops_total=flops_total,
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
    """Ghost count ``k* = m (p - 1) / p`` at which a PP hidden layer has the same parameters as
    the dense/TP layer (free parameters: D_rr's held zeros not counted) and, in the method's
    count ``2Bm(m + pk)``, the same forward matmul FLOPs; PP is cheaper in both for ``k < k*``.
    (With p > 2 every rank's decompression GEMM also reads its own ghosts against the zero
    block D_rr, ``2Bmk`` more: its FLOPs break even at ``m (p - 1) / (p + 1)``.)"""
    validate_layout("tp", width, p, None)
    m = width // p
    return m * (p - 1) / p
