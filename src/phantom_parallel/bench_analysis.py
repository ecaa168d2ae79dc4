"""Analysis of one ``phantom-bench`` run (rank 0): statistics of the step samples, the time
model fitted to the run's microbenchmarks, its predictions and the two targets.

There is one time model, :func:`phantom_parallel.timing.step_time` on a hardware profile
(:mod:`phantom_parallel.hardware`); this module only fits that profile's constants
(:func:`phantom_parallel.calibration.fit_rows`) and compares:

* **microbenchmark fit** (a diagnostic): the communication group (``collective_launch_s``,
  ``intra_bandwidth``) on the collectives timed as a step calls them
  (:func:`phantom_parallel.collectives.collective_s` per row); the compute group
  (:func:`micro_compute_keys`: ``gemm_efficiency``, ``host_op_s``, ``memory_efficiency`` and,
  when the profile has it, ``elementwise_flop_rate``) on the per-rank GEMMs
  (:func:`phantom_parallel.timing.gemm_s`, one operator each), the elementwise kernels
  (:func:`phantom_parallel.timing.elementwise_s`, :data:`ELEMENTWISE_OPS` operators) and the
  Adam steps over each strategy's parameter shapes (:func:`phantom_parallel.timing.optimizer_s`,
  :data:`ADAM_OPS` operators), all timed on all ranks at once (mean over ranks);
* **TP-calibrated** (the PP target): the microbenchmark profile re-fitted on this run's
  measured TP steps (:func:`phantom_parallel.calibration.fit`: communication on TP's seconds
  in collectives, compute on the rest), then PP predicted out of sample from its own counts.

Uncertainty of a median: ``se = 0.93 * IQR / sqrt(N)`` (normal approximation,
``1.2533 sigma / sqrt(N)`` with ``sigma = IQR / 1.349``); a ratio's uncertainty combines the two
relative ones in quadrature. Times are seconds, rates FLOP/s, sizes bytes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from phantom_parallel import calibration, costs
from phantom_parallel.collectives import collective_s
from phantom_parallel.hardware import Profile
from phantom_parallel.timing import (
    elementwise_s,
    gemm_s,
    optimizer_s,
    step_time,
    wall_s,
)

PP_TARGET = 0.15
"""PP target: ``|measured / predicted - 1| <= PP_TARGET``."""
SE_MEDIAN = 1.2533 / 1.349
"""``se(median) = SE_MEDIAN * IQR / sqrt(N)`` for normally distributed samples."""
MICRO_COMPUTE_KEYS = ("gemm_efficiency", "host_op_s", "memory_efficiency")
"""Compute constants fitted on the GEMM, elementwise and Adam microbenchmarks (and
``elementwise_flop_rate`` when the profile has it: :func:`micro_compute_keys`)."""
ADAM_OPS = 4
"""Operators of one fused Adam step, as ``CountOps`` counts them: ``_fused_adam_``, the
``_foreach_add_`` of the step counters and the profiler's record-function enter and exit."""
ELEMENTWISE_OPS = 4
"""Operators of one elementwise microbenchmark call: bias add, activation forward and
backward, bias-gradient sum (:func:`phantom_parallel.bench_micro.bench_elementwise`)."""


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """``(median, q1, q3)`` of ``values`` (inclusive quartiles; one value gives q1 = q3)."""
    if not values:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        v = float(values[0])
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return float(q2), float(q1), float(q3)


def median_se(values: Sequence[float]) -> float:
    """Standard error of the median from the IQR (same unit as ``values``)."""
    if len(values) < 2:
        return math.nan
    _, q1, q3 = median_iqr(values)
    return SE_MEDIAN * (q3 - q1) / math.sqrt(len(values))


def ratio(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``median(a) / median(b)`` and its uncertainty (relative errors in quadrature)."""
    ma, mb = median_iqr(a)[0], median_iqr(b)[0]
    r = ma / mb
    return r, r * math.hypot(median_se(a) / ma, median_se(b) / mb)


def rate_through_origin(rows: Sequence[tuple[float, float]]) -> float:
    """Least-squares rate ``r`` of ``seconds = work / r`` over ``(seconds, work)`` rows."""
    num = sum(t * w for t, w in rows)
    den = sum(w * w for _, w in rows)
    return den / num


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, IQR and standard error of the median of ``values`` (seconds)."""
    med, q1, q3 = median_iqr(values)
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "se_s": median_se(values)}


def micro_rows(micro: dict[str, list[dict[str, Any]]], p: int, elem: int, mode: str
               ) -> dict[str, list[calibration.Row]]:
    """Rows of :func:`phantom_parallel.calibration.fit_rows` per group (``comm``, ``gemm``,
    ``elementwise``, ``optimizer``) from the microbenchmark rows ``in_step_collectives``,
    ``matmul_concurrent``, ``elementwise_concurrent`` and ``optimizer`` (seconds: mean over
    ranks; of the Adam rows only those over a strategy's parameter shapes, ``adam_step_s``)."""
    adam = [r for r in micro.get("optimizer", []) if r.get("set") in micro.get("adam_step_s", {})]
    return {
        "comm": [(lambda h, r=r: collective_s(r["op"], r["payload_bytes"], p, h), r["seconds"])
                 for r in micro["in_step_collectives"]],
        "gemm": [(lambda h, r=r: wall_s(gemm_s(r["m"], r["k"], r["n"], elem, h), 1, h, mode),
                  r["seconds"]) for r in micro["matmul_concurrent"]],
        "elementwise": [(lambda h, r=r: wall_s(elementwise_s(r["flops"], elem, h),
                                               ELEMENTWISE_OPS, h, mode), r["seconds"])
                        for r in micro["elementwise_concurrent"]],
        "optimizer": [(lambda h, r=r: wall_s(optimizer_s(r["elements"], elem, h), ADAM_OPS,
                                             h, mode), r["seconds"]) for r in adam],
    }


def micro_compute_keys(hw: Profile) -> tuple[str, ...]:
    """The compute constants :func:`fit_micro` fits on ``hw``: :data:`MICRO_COMPUTE_KEYS`, and
    ``elementwise_flop_rate`` when the profile has that (optional) constant."""
    extra = ("elementwise_flop_rate",) if hw.get("elementwise_flop_rate") else ()
    return (*MICRO_COMPUTE_KEYS, *extra)


def _rel_err(rows: Sequence[calibration.Row], hw: Profile) -> dict[str, float]:
    errs = [abs(f(hw) / t - 1) for f, t in rows]
    return {"median": statistics.median(errs), "max": max(errs)} if errs else {}


def fit_micro(hw: Profile, micro: dict[str, list[dict[str, Any]]], p: int, elem: int,
              mode: str) -> tuple[Profile, dict[str, dict[str, float]]]:
    """``hw`` fitted on the microbenchmarks, and each group's relative fit error."""
    rows = micro_rows(micro, p, elem, mode)
    out = calibration.fit_rows(hw, calibration.COMM_KEYS, rows["comm"])
    keys = micro_compute_keys(hw)
    out = calibration.fit_rows(out, keys,
                               rows["gemm"] + rows["elementwise"] + rows["optimizer"])
    out = calibration.relabel(out, hw, (*calibration.COMM_KEYS, *keys),
                              "phantom-bench microbenchmarks")
    return out, {group: _rel_err(r, out) for group, r in rows.items()}


def fitted_values(hw: Profile) -> dict[str, float]:
    """The constants the bench fits, by name (the profile's units)."""
    return {k: hw[k] for k in (*calibration.COMM_KEYS, *micro_compute_keys(hw))}


def prediction(cost: costs.CostBreakdown, hw: Profile, mode: str,
               step: dict[str, float]) -> dict[str, float]:
    """The time model's phases of ``cost`` on ``hw`` next to the measured step summary."""
    t = step_time(cost, hw, mode=mode)
    return {"comm_s": t.comm_s, "compute_s": t.total_s - t.comm_s, "gemm_s": t.gemm_s,
            "elementwise_s": t.elementwise_s, "optimizer_s": t.optimizer_s,
            "overhead_s": t.idle_s, "total_s": t.total_s,
            "measured_over_predicted": step["median_s"] / t.total_s,
            "measured_over_predicted_se": step["se_s"] / t.total_s}


def tp_calibrated(micro_hw: Profile, strategies: dict[str, Any], shapes: dict[str, Any],
                  mode: str) -> dict[str, Any]:
    """PP's step time from ``micro_hw`` re-fitted on this run's measured TP steps
    (:func:`phantom_parallel.calibration.fit`); PP's own steps are not used."""
    tp = strategies["tp"]
    run = calibration.Run("tp", shapes["tp"], tp["comm"]["median_s"], tp["compute"]["median_s"],
                          tp["step"]["median_s"])
    hw = calibration.fit(micro_hw, [run], mode=mode, label="this run's TP steps")
    cost = costs.predict("pp", shapes["pp"], optimizer="adam")
    out = prediction(cost, hw, mode, strategies["pp"]["step"])
    out["scales"] = {k: hw[k] / micro_hw[k] for k in fitted_values(hw)}
    out["constants"] = fitted_values(hw)
    return out


def _verdict(ratio_: float) -> str:
    return "PASS" if abs(ratio_ - 1.0) <= PP_TARGET else "MISS"


def _phase_reason(pp: dict[str, Any], pred: dict[str, Any]) -> str:
    """Measured vs predicted per phase of PP (ms), for a missed target."""
    return (f"measured {pp['step']['median_s'] * 1e3:.3f} ms vs predicted "
            f"{pred['total_s'] * 1e3:.3f} ms: comm {pp['comm']['median_s'] * 1e3:.3f} vs "
            f"{pred['comm_s'] * 1e3:.3f}; compute {pp['compute']['median_s'] * 1e3:.3f} vs "
            f"{pred['compute_s'] * 1e3:.3f} ms")


def checks(strategies: dict[str, Any], tp_dt: tuple[float, float]) -> dict[str, Any]:
    """PASS/MISS of the two targets (and of the microbenchmark-only diagnostic), with reasons."""
    pp = strategies["pp"]
    cal, micro = pp["prediction_tp_calibrated"], pp["prediction"]
    r_cal, r_micro = cal["measured_over_predicted"], micro["measured_over_predicted"]
    ratio_tp, se_tp = tp_dt
    if ratio_tp <= 1.0:
        tp_verdict, tp_reason = "PASS", ""
    elif ratio_tp - 2 * se_tp <= 1.0:
        tp_verdict = "PASS"
        tp_reason = f"slower by {100 * (ratio_tp - 1):.1f}% but within 2 standard errors (noise)"
    else:
        tp_verdict = "MISS"
        tp_reason = f"TP slower than DTensor by {100 * (ratio_tp - 1):.1f}% (> 2 standard errors)"
    target = f"|ratio - 1| <= {PP_TARGET}"
    return {
        "pp_within_15pct_of_model": {
            "verdict": _verdict(r_cal), "ratio": r_cal, "se": cal["measured_over_predicted_se"],
            "target": target,
            "model": "timing.step_time, profile fitted on the microbenchmarks and then on this "
                     "run's TP steps (PP out of sample)",
            "reason": "" if _verdict(r_cal) == "PASS" else _phase_reason(pp, cal)},
        "pp_within_15pct_of_microbenchmark_model": {
            "verdict": _verdict(r_micro), "ratio": r_micro,
            "se": micro["measured_over_predicted_se"], "target": target,
            "model": "timing.step_time, profile fitted on the microbenchmarks only (diagnostic: "
                     "how much in-situ cost the microbenchmarks miss)",
            "reason": "" if _verdict(r_micro) == "PASS" else _phase_reason(pp, micro)},
        "tp_no_slower_than_dtensor": {"verdict": tp_verdict, "ratio": ratio_tp, "se": se_tp,
                                      "target": "ratio <= 1 (within 2 se)", "reason": tp_reason},
    }


def _strategy(s: str, ranks: list[dict[str, list[float]]], cost: costs.CostBreakdown,
              loss: float, matmul_rate: float) -> dict[str, Any]:
    """Summaries of one strategy's per-rank samples: step = max over ranks, phases = mean."""
    n = len(ranks[0]["step"])
    step = [max(r["step"][i] for r in ranks) for i in range(n)]

    def mean(key: str) -> list[float]:
        return [statistics.fmean(r[key][i] for r in ranks) for i in range(n)]

    comm_s = mean("comm")
    has_comm = s != "dtensor"
    compute = [a - b for a, b in zip(step, comm_s, strict=True)]
    achieved = cost.matmul_flops / median_iqr(compute if has_comm else step)[0]
    return {
        "step": summary(step), "comm": summary(comm_s) if has_comm else None,
        "compute": summary(compute) if has_comm else None,
        "fwd": summary(mean("fwd")), "bwd": summary(mean("bwd")), "opt": summary(mean("opt")),
        "matmul_flops": cost.matmul_flops, "elementwise_flops": cost.elementwise_flops,
        "comm_calls": cost.n_comm_calls, "wire_bytes": cost.wire_bytes,
        "param_tensors_per_rank": cost.param_tensors_per_rank, "matmul_calls": cost.matmul_calls,
        "achieved_flop_rate": achieved, "achieved_fraction": achieved / matmul_rate,
        "achieved_basis": "compute" if has_comm else "step (comm not separable)",
        "final_loss": loss,
        "samples": {"step_s": step, "comm_s": comm_s if has_comm else None, "per_rank": ranks},
    }


def analyse(shape: costs.FFNShape, activation: str, hw: Profile, mode: str,
            micro: dict[str, Any], per_rank: list[dict[str, Any]],
            losses: dict[str, float]) -> dict[str, Any]:
    """Calibration, per-strategy summaries with predictions, ratios and checks of one run.

    Args:
        shape: the benchmark's FFN (``ghosts`` = PP's k). activation: its hidden activation.
        hw: the starting profile (``--hardware``). mode: :data:`phantom_parallel.timing.MODES`.
        micro: microbenchmark rows (``matmul``, ``matmul_concurrent``,
            ``elementwise_concurrent``, ``in_step_collectives``, ``optimizer``, ``adam_step_s``).
        per_rank: per rank, ``{strategy: {step, comm, fwd, bwd, opt: [seconds per step]}}``.
        losses: last loss per strategy.
    """
    micro_hw, fit_err = fit_micro(hw, micro, shape.p, shape.elem_bytes, mode)
    matmul_rate = rate_through_origin([(r["seconds"], r["flops"]) for r in micro["matmul"]])
    shapes = {s: shape if s == "pp" else shape.replace(ghosts=0) for s in per_rank[0]}
    strategies: dict[str, Any] = {}
    for s, shp in shapes.items():
        cost = costs.predict(s, shp, optimizer="adam", activation=activation)
        strategies[s] = _strategy(s, [pr[s] for pr in per_rank], cost, losses[s], matmul_rate)
        if s in ("pp", "tp"):
            strategies[s]["prediction"] = prediction(cost, micro_hw, mode, strategies[s]["step"])
            strategies[s]["prediction"]["adam_microbenchmark_s"] = micro["adam_step_s"][s]
    strategies["pp"]["prediction_tp_calibrated"] = tp_calibrated(micro_hw, strategies, shapes,
                                                                 mode)
    samples = {s: d["samples"]["step_s"] for s, d in strategies.items()}
    pp_tp = ratio(samples["pp"], samples["tp"])
    tp_dt = ratio(samples["tp"], samples["dtensor"])
    calib = {
        "profile": hw.name, "mode": mode, "constants": fitted_values(micro_hw),
        "profile_values": fitted_values(hw), "fit_rel_err": fit_err,
        "method": "time model timing.step_time on the profile; collective_launch_s and "
                  "intra_bandwidth fitted (least squares of log model/measured) on collectives "
                  "timed right after a compute burst on all ranks (mean per call); "
                  f"{', '.join(micro_compute_keys(hw))} on the per-rank GEMMs, elementwise "
                  "kernels and Adam steps timed on all ranks at once (mean over ranks)",
        "matmul_flop_rate": matmul_rate, **micro}
    return {"calibration": calib, "strategies": strategies,
            "ratios": {"pp_over_tp": pp_tp[0], "pp_over_tp_se": pp_tp[1],
                       "tp_over_dtensor": tp_dt[0], "tp_over_dtensor_se": tp_dt[1]},
            "checks": checks(strategies, tp_dt)}
