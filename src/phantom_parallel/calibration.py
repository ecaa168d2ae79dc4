"""Fit a hardware profile's constants to measured training runs (the time model of
:mod:`phantom_parallel.timing`, nothing else).

Two groups are fitted, each by least squares on ``log(modelled / measured)`` (relative errors,
small and large runs alike): communication (``collective_launch_s`` and ``intra_bandwidth``,
with ``injection_bandwidth_per_node`` kept in its profile ratio to ``intra_bandwidth``) on the
runs' measured seconds in collectives per step, and compute (``gemm_efficiency`` and
``host_op_s``; only ``host_op_s`` when the profile has measured GEMMs) on their measured
seconds outside collectives per step. Every other constant
keeps its profile value. The fitted values may leave the profile's ranges (they are reported);
:func:`fit_rows` fits any group to any rows (e.g. the microbenchmarks of ``phantom-bench``);
the result is a derived :class:`~phantom_parallel.hardware.Profile` whose fitted constants say so
in their ``source``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.hardware import Profile
from phantom_parallel.timing import StepTime, step_time

COMM_KEYS = ("collective_launch_s", "intra_bandwidth")
COMPUTE_KEYS = ("gemm_efficiency", "host_op_s")


@dataclass(frozen=True)
class Run:
    """One measured run: its strategy and shape, and seconds per step in collectives
    (``comm_s``), outside them (``compute_s``) and in all (``step_s``)."""

    strategy: str
    shape: FFNShape
    comm_s: float
    compute_s: float
    step_s: float
    optimizer: str = "adam"


def model(run: Run, hw: Profile, mode: str = "sync") -> StepTime:
    """The model's step of ``run`` on ``hw``."""
    shape = run.shape if run.strategy == "pp" and run.shape.p > 1 else run.shape.replace(ghosts=0)
    return step_time(predict(run.strategy, shape, optimizer=run.optimizer), hw, mode=mode)


def _apply(hw: Profile, keys: Sequence[str], logs: np.ndarray) -> Profile:
    values = {k: math.exp(v) for k, v in zip(keys, logs, strict=True)}
    if "intra_bandwidth" in values:
        ratio = hw["injection_bandwidth_per_node"] / hw["intra_bandwidth"]
        values["injection_bandwidth_per_node"] = values["intra_bandwidth"] * ratio
    return hw.with_values(**values)


Row = tuple[Callable[[Profile], float], float]
"""One measurement for :func:`fit_rows`: the model's seconds as a function of the profile, and
the measured seconds (> 0)."""


def fit_rows(hw: Profile, keys: Sequence[str], rows: Sequence[Row]) -> Profile:
    """``hw`` with the constants ``keys`` fitted by least squares on ``log(modelled /
    measured)`` over ``rows`` (every other constant kept; no rows: ``hw`` unchanged).

    ``injection_bandwidth_per_node`` follows ``intra_bandwidth`` in its profile ratio. The
    search starts at each value clamped into its stated range: a value that an earlier fit
    drove far outside it (e.g. a host cost of 1e-17 s from microbenchmarks that show none)
    has, in log space, no gradient to come back along, and an underdetermined fit (fewer
    rows than keys) should start from a plausible value. The result may leave the range.

    Raises:
        ValueError: ``gemm_efficiency`` is to be fitted on a profile with a measured
            ``gemm_table`` (the table, not that constant, sets its GEMMs' efficiency).
    """
    from scipy.optimize import least_squares

    if "gemm_efficiency" in keys and hw.gemm_table:
        raise ValueError(f"{hw.path}: gemm_table: the profile's GEMMs are measured; "
                         "fitting gemm_efficiency to runs would not change the model")

    use = [(f, t) for f, t in rows if t > 0]
    if not use:
        return hw

    def residuals(logs: np.ndarray) -> np.ndarray:
        h = _apply(hw, keys, logs)
        return np.asarray([math.log(max(f(h), 1e-15) / t) for f, t in use])

    x0 = np.log([min(max(hw[k], hw.constants[k].range[0]), hw.constants[k].range[1])
                 for k in keys])
    sol = least_squares(residuals, x0, method="trf", x_scale=1.0)
    return _apply(hw, keys, sol.x)


def _run_rows(runs: Sequence[Run], group: str, mode: str) -> list[Row]:
    """Rows of the measured runs for the ``comm`` or ``compute`` group."""
    if group == "comm":
        return [(lambda h, r=r: model(r, h, mode).comm_s, r.comm_s)
                for r in runs if r.shape.p > 1]
    return [(lambda h, r=r: (lambda t: t.total_s - t.comm_s)(model(r, h, mode)), r.compute_s)
            for r in runs]


def compute_keys(hw: Profile) -> tuple[str, ...]:
    """The compute constants :func:`fit` fits: :data:`COMPUTE_KEYS`, less ``gemm_efficiency``
    when the profile has measured GEMMs (``gemm_table``), whose times then set the GEMMs."""
    return tuple(k for k in COMPUTE_KEYS if not (k == "gemm_efficiency" and hw.gemm_table))


def fit(hw: Profile, runs: Sequence[Run], mode: str = "sync", label: str = "measured runs",
        compute: Sequence[str] | None = None) -> Profile:
    """``hw`` with the communication and compute groups fitted to ``runs``.

    Args:
        hw: the starting profile (e.g. ``local-cpu``).
        runs: measured runs (at least one with ``p > 1`` for the communication group).
        mode: execution mode of the runs (``sync`` for CPU ranks).
        label: what the runs are, written into the fitted constants' ``source``.
        compute: the compute constants to fit; ``None`` for :func:`compute_keys` (e.g.
            ``("host_op_s",)`` when ``gemm_efficiency`` was measured on GEMMs alone).
    """
    if not runs:
        raise ValueError("fit needs at least one run")
    keys = compute_keys(hw) if compute is None else tuple(compute)
    out = fit_rows(hw, COMM_KEYS, _run_rows(runs, "comm", mode))
    out = fit_rows(out, keys, _run_rows(runs, "compute", mode))
    return relabel(out, hw, (*COMM_KEYS, *keys), f"{len(runs)} {label}")


def relabel(fitted: Profile, hw: Profile, keys: Sequence[str], label: str) -> Profile:
    """``fitted`` with the ``source`` of ``keys`` (and ``injection_bandwidth_per_node`` when
    ``intra_bandwidth`` is one) saying what they were fitted on; ``hw`` gives the old values."""
    if "intra_bandwidth" in keys:
        keys = (*keys, "injection_bandwidth_per_node")
    consts = dict(fitted.constants)
    for key in keys:
        consts[key] = dataclasses.replace(
            consts[key], source=f"fitted by phantom_parallel.calibration on {label} "
                                f"(profile value {hw[key]:.3g})")
    return dataclasses.replace(fitted, constants=consts)
