"""Step time and energy by phase of one rank, from the cost counts and a hardware profile.

The one time model of the projection (:mod:`phantom_parallel.projection`) and of the GPU
validation (``benchmarks/projection/validate_h200.py``). Per step and rank, in seconds:

* **GEMMs**: every GEMM of :attr:`LayerCost.gemms_fwd` (``(M, K, N)``) and its dgrad and wgrad
  (:func:`step_gemms`) takes ``max(2 M K N / (peak x efficiency), bytes / (hbm_bandwidth x
  memory_efficiency))`` with ``bytes = elem (M K + K N + M N)`` against the profile's peaks
  (``peak_flops_bf16`` for 2-byte, ``_fp32`` for 4-byte elements). The efficiency is the
  measured one of the nearest shape in the profile's ``gemm_table`` when it has GEMMs of that
  element size, else the stated ``gemm_efficiency`` (:func:`gemm_efficiency`).
* **elementwise** (bias, activation, their backward): one read + one write of ``elem`` bytes per
  nominal elementwise FLOP of :func:`phantom_parallel.costs.predict`, at streaming bandwidth,
  or, when the profile has ``elementwise_flop_rate`` and it is slower, those FLOPs at that rate
  (:func:`elementwise_s`: a CPU core computes GELU's erf slower than it streams the bytes).
* **optimizer** (Adam): reads parameter, gradient, two moments and writes three, ``7 elem`` bytes
  per parameter element on the rank.
* **kernels**: ``kernel_s`` of launch/tail per kernel, the step's operators less its views
  (which launch none); in eager mode the host must also dispatch every operator,
  ``ops x host_op_s``, and the compute phase is the longer of host and device (see
  :data:`MODES`).
* **communication**: each collective call of the step from :mod:`phantom_parallel.collectives`
  (``comm="network"``), or, to compare with ``phantom-emulate``, the memory traffic of its local
  stand-ins (``comm="stand-in"``: all-reduce reads and writes the tensor; all-gather writes ``p``
  chunks; reduce-scatter reads ``p`` chunks and writes one).

No overlap of communication and compute. Energy per step (J) is by phase: every device draws
``power_busy_w`` while its kernels run, ``power_comm_w`` in collectives, ``power_idle_w`` in
launch gaps and host waits; each node adds ``node_baseline_w`` over the whole step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from phantom_parallel.collectives import collective_s
from phantom_parallel.costs import CostBreakdown
from phantom_parallel.hardware import Profile

OPS_PER_STEP_L4: dict[str, int] = {"serial": 89, "tp": 105, "dtensor": 105, "pp": 165,
                                   "pp@p=2": 181}
"""Operators per steady training step at ``L = 4`` (forward + MSE + backward + fused Adam,
float32, any rank; bf16 adds 3 casts), as ``phantom-emulate`` counts them (``ops_per_step``);
DTensor taken as TP; PP with p = 2 (``"pp@p=2"``, :func:`table_key`) allocates and zeroes the
own rows of dL/dG^T where p > 2 zeroes D_rr's gradient. Other ``L`` scale by ``(L + 2) / 6``
(an approximation: ops per linear layer). ``tests/test_projection.py`` counts both on CPU."""

VIEW_OPS_PER_STEP_L4: dict[str, int] = {"serial": 47, "tp": 50, "dtensor": 50, "pp": 84,
                                        "pp@p=2": 96}
"""Of :data:`OPS_PER_STEP_L4`, the views (``view_ops_per_step``: ``t``, ``view``, ``slice``,
``detach`` ...): dispatched by the host, no kernel on the device."""

ADAM_STATE_OPS = 3
"""Operators Adam's first step adds per parameter tensor to create its state (``step``,
``exp_avg``, ``exp_avg_sq``)."""

MODES = ("eager", "graph", "sync")
"""Execution modes: ``eager`` PyTorch on an accelerator (the host dispatches while the device
runs: the longer of the two), ``graph`` (CUDA-graph replay: no host dispatch), ``sync`` (a CPU
rank: the same thread dispatches and computes, so ``busy + ops x (host_op_s + kernel_s)``)."""

COMM_MODES = ("network", "stand-in")


def table_key(strategy: str, p: int) -> str:
    """The key of ``strategy`` at ``p`` ranks in :data:`OPS_PER_STEP_L4`."""
    return "pp@p=2" if strategy == "pp" and p == 2 else strategy


def ops_per_step(strategy: str, layers: int, p: int, table: dict[str, int] = OPS_PER_STEP_L4,
                 ) -> float:
    """Estimated operators per step of ``strategy`` with ``layers`` hidden layers on p ranks
    (``table``: the counts at ``L = 4``, scaled by ``(L + 2) / 6``)."""
    return table[table_key(strategy, p)] * (layers + 2) / 6


def view_ops_per_step(strategy: str, layers: int, p: int) -> float:
    """Estimated views (operators without a kernel) among :func:`ops_per_step`."""
    return ops_per_step(strategy, layers, p, VIEW_OPS_PER_STEP_L4)


@dataclass(frozen=True)
class StepTime:
    """Modelled seconds and joules of one step (seconds per rank; energy over all devices and
    nodes of the run). ``busy_s = gemm_s + elementwise_s + optimizer_s + standin_s``;
    ``total_s = busy_s + idle_s + comm_s``."""

    gemm_s: float
    elementwise_s: float
    optimizer_s: float
    standin_s: float
    busy_s: float
    idle_s: float
    comm_s: float
    total_s: float
    energy_compute_j: float
    energy_comm_j: float
    energy_idle_j: float
    energy_node_j: float
    energy_j: float

    def row(self) -> dict[str, Any]:
        """Flat dict of all fields."""
        return asdict(self)


def _peak(hw: Profile, elem_bytes: int) -> float:
    if elem_bytes <= 2:
        return hw["peak_flops_bf16"]
    if elem_bytes >= 8:
        return hw.get("peak_flops_fp64") or hw["peak_flops_fp32"] / 2
    return hw["peak_flops_fp32"]


def gemm_efficiency(m: int, k: int, n: int, elem_bytes: int, hw: Profile) -> float:
    """Fraction of the matrix peak an ``(m x k) @ (k x n)`` GEMM reaches: that of the nearest
    GEMM of the same element size measured on the device (``hw.gemm_table``, see
    :meth:`~phantom_parallel.hardware.Profile.nearest_gemm`), else ``hw["gemm_efficiency"]``."""
    g = hw.nearest_gemm(m, k, n, elem_bytes)
    if g is None:
        return hw["gemm_efficiency"]
    return 2.0 * g.m * g.k * g.n / (g.seconds * _peak(hw, elem_bytes))


def gemm_s(m: int, k: int, n: int, elem_bytes: int, hw: Profile) -> float:
    """Roofline seconds of one ``(m x k) @ (k x n)`` GEMM at the profile's efficiencies."""
    flops = 2.0 * m * k * n
    data = elem_bytes * (m * k + k * n + m * n)
    return max(flops / (_peak(hw, elem_bytes) * gemm_efficiency(m, k, n, elem_bytes, hw)),
               data / (hw["hbm_bandwidth"] * hw["memory_efficiency"]))


def step_gemms(cost: CostBreakdown) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of every GEMM of one training step of ``cost``: each forward GEMM of each
    layer, its weight gradient ``(K, M, N)`` and, except in the input layer (whose input needs
    no gradient), its input gradient ``(M, N, K)``."""
    out = []
    for layer in cost.layers:
        for m, k, n in layer.gemms_fwd:
            out += [(m, k, n), (k, m, n)] + ([(m, n, k)] if layer.name != "input" else [])
    return out


def stream_s(nbytes: float, hw: Profile) -> float:
    """Seconds to stream ``nbytes`` bytes through device memory at the profile's efficiency."""
    return nbytes / (hw["hbm_bandwidth"] * hw["memory_efficiency"])


ADAM_BYTES_PER_ELEMENT = 7
"""Element sizes one Adam step streams per parameter element: reads parameter, gradient and
two moments, writes parameter and moments."""


def optimizer_s(elements: float, elem_bytes: int, hw: Profile) -> float:
    """Seconds of one Adam step over ``elements`` parameter elements, streamed
    (:data:`ADAM_BYTES_PER_ELEMENT` element sizes each)."""
    return stream_s(ADAM_BYTES_PER_ELEMENT * elem_bytes * elements, hw)


def elementwise_s(flops: float, elem_bytes: int, hw: Profile) -> float:
    """Seconds of ``flops`` nominal elementwise FLOPs (``2 elem_bytes`` bytes each): streamed
    through memory, or computed at the profile's ``elementwise_flop_rate`` if it has one and
    that takes longer."""
    rate = hw.get("elementwise_flop_rate")
    return max(stream_s(2.0 * elem_bytes * flops, hw), flops / rate if rate else 0.0)


def wall_s(busy_s: float, ops: float, hw: Profile, mode: str, views: float = 0.0) -> float:
    """Wall seconds of ``ops`` operators, ``views`` of them views (no kernel), whose kernels
    are busy ``busy_s`` in all (no communication): device time ``busy_s + (ops - views) x
    kernel_s``, and the host's dispatch of every operator, ``ops x host_op_s``, overlapped
    (``eager``), absent (``graph``) or added (``sync``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    device = busy_s + (ops - views) * hw["kernel_s"]
    if mode == "eager":
        return max(ops * hw["host_op_s"], device)
    if mode == "sync":
        return device + ops * hw["host_op_s"]
    return device


def standin_bytes(cost: CostBreakdown) -> float:
    """Memory bytes of ``phantom-emulate``'s local stand-ins for the step's collectives."""
    p = cost.shape.p
    total = 0.0
    for c in cost.calls:
        if c.op == "all_reduce":
            total += 2 * c.payload_bytes
        elif c.op == "all_gather":
            total += (p + 1) * c.payload_bytes
        else:
            total += c.payload_bytes * (1 + 1 / p)
    return total


def step_time(cost: CostBreakdown, hw: Profile, *, mode: str = "eager", comm: str = "network",
              ops: float | None = None, views: float | None = None,
              devices: int | None = None) -> StepTime:
    """Modelled time and energy of one step of ``cost`` on profile ``hw``.

    Args:
        cost: :func:`phantom_parallel.costs.predict` of the strategy and shape.
        hw: the hardware profile.
        mode: ``eager`` or ``graph`` (see module docstring).
        comm: ``network`` (collectives on the profile's links) or ``stand-in`` (the
            emulation's local stand-ins, no network).
        ops: operators per step; ``None`` for :func:`ops_per_step`.
        views: views among them (no kernel); ``None`` for :func:`view_ops_per_step`.
        devices: devices whose energy is summed; ``None`` for ``cost.shape.p`` (all ranks).
            Nodes are ``ceil(devices / devices_per_node)``; ``comm="stand-in"`` counts one
            device and no node baseline (what a per-GPU sensor measures).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if comm not in COMM_MODES:
        raise ValueError(f"unknown comm {comm!r}; expected one of {COMM_MODES}")
    e = cost.shape.elem_bytes
    gemm = sum(gemm_s(m, k, n, e, hw) for m, k, n in step_gemms(cost))
    elementwise = elementwise_s(cost.elementwise_flops, e, hw)
    optimizer = optimizer_s(cost.params_per_rank, e, hw)
    standin = stream_s(standin_bytes(cost), hw) if comm == "stand-in" else 0.0
    busy = gemm + elementwise + optimizer + standin
    layers = cost.shape.layers
    p = cost.shape.p
    n_ops = ops_per_step(cost.strategy, layers, p) if ops is None else float(ops)
    n_views = view_ops_per_step(cost.strategy, layers, p) if views is None else float(views)
    wall = wall_s(busy, n_ops, hw, mode, n_views)
    idle = wall - busy
    if comm == "network":
        comm_s = sum(collective_s(c.op, c.payload_bytes, cost.shape.p, hw) for c in cost.calls)
    else:
        comm_s = 0.0
    total = wall + comm_s
    if comm == "stand-in":
        n_dev, nodes = 1, 0
    else:
        n_dev = cost.shape.p if devices is None else devices
        nodes = math.ceil(n_dev / hw["devices_per_node"])
    e_busy = n_dev * hw["power_busy_w"] * busy
    e_comm = n_dev * hw["power_comm_w"] * comm_s
    e_idle = n_dev * hw["power_idle_w"] * idle
    e_node = nodes * hw["node_baseline_w"] * total
    return StepTime(gemm, elementwise, optimizer, standin, busy, idle, comm_s, total,
                    e_busy, e_comm, e_idle, e_node, e_busy + e_comm + e_idle + e_node)
