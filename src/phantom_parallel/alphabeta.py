"""The alpha-beta constants of ``phantom-bench`` (its microbenchmark check of PP vs TP on the
local machine), and their fits. **Legacy**: the project's one time model is
:mod:`phantom_parallel.timing` on a hardware profile; this module is kept only because
``phantom-bench`` (:mod:`phantom_parallel.bench`) still calibrates and reports with it, and
``tests/test_one_time_model.py`` fails if anything else uses it.

``t_step = sum_calls (alpha_op + wire_bytes / beta) + matmul_flops / flop_rate
+ matmul_calls * matmul_call_s [+ elementwise_flops / elementwise_rate]
[+ optimizer terms]`` (seconds; bytes/s; FLOP/s).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from phantom_parallel.cost_types import COLLECTIVES, CostBreakdown


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
