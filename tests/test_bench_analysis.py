"""``phantom-bench``'s analysis on the one time model: the microbenchmark fit recovers the
constants that made synthetic rows, the TP-calibrated profile reproduces TP's measured phases
and predicts PP with :func:`phantom_parallel.timing.step_time`, and the statistics and
verdicts follow their definitions."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from phantom_parallel import bench_analysis as ba
from phantom_parallel import hardware
from phantom_parallel.collectives import collective_s
from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.emulate_comm import CountOps
from phantom_parallel.timing import (
    elementwise_s,
    gemm_s,
    optimizer_s,
    step_time,
    stream_s,
    wall_s,
)
from phantom_parallel.train_setup import make_optimizer


def _without_rate(hw: hardware.Profile) -> hardware.Profile:
    """``hw`` without ``elementwise_flop_rate``: elementwise kernels memory-bound, as on a GPU."""
    return dataclasses.replace(hw, constants={k: v for k, v in hw.constants.items()
                                              if k != "elementwise_flop_rate"})


HW = hardware.load("local-cpu").with_values(hbm_bandwidth=4e10)
TRUE = HW.with_values(collective_launch_s=1e-3, intra_bandwidth=5e8,
                      injection_bandwidth_per_node=1e9, gemm_efficiency=0.5, host_op_s=2e-5,
                      memory_efficiency=0.6, elementwise_flop_rate=1e9)
"""Elementwise kernels compute-bound (GELU on a CPU core: 1e9 < 4e10 x 0.6 / 8 FLOP/s)."""
SHAPE = FFNShape(64, 512, 3, 8, 128, 2, 16)


def _micro(hw: hardware.Profile, p: int = 2, elem: int = 4) -> dict[str, list[dict]]:
    """Microbenchmark rows as the model on ``hw`` times them (the fit must find ``hw``)."""
    gemms = [(128, n, n) for n in (64, 256, 512, 1024)] + [(128, 256, 16)]
    return {
        "in_step_collectives": [
            {"op": op, "payload_bytes": b, "seconds": collective_s(op, b, p, hw)}
            for op in ("all_reduce", "all_gather", "reduce_scatter") for b in (4e3, 4e5, 4e6)],
        "matmul_concurrent": [
            {"m": m, "k": k, "n": n, "flops": 2 * m * k * n,
             "seconds": wall_s(gemm_s(m, k, n, elem, hw), 1, hw, "sync")} for m, k, n in gemms],
        "elementwise_concurrent": [
            {"flops": f, "seconds": wall_s(elementwise_s(f, elem, hw), ba.ELEMENTWISE_OPS,
                                           hw, "sync")} for f in (5e4, 5e5, 5e6)],
        "optimizer": [
            {"set": s, "elements": e,
             "seconds": wall_s(optimizer_s(e, elem, hw), ba.ADAM_OPS, hw, "sync")}
            for s, e in (("tp", 3e5), ("pp", 2e5), ("dtensor", 3e6))]
        + [{"set": "2x1024", "elements": 2048, "seconds": 1.0}],  # synthetic sets: not fitted
        "adam_step_s": {"tp": 0.0, "pp": 0.0, "dtensor": 0.0},
    }


@pytest.mark.parametrize("compute_bound", [True, False], ids=["compute-bound", "memory-bound"])
def test_micro_fit_recovers_the_constants_that_made_the_rows(compute_bound: bool) -> None:
    true, start = (TRUE, HW) if compute_bound else (_without_rate(TRUE), _without_rate(HW))
    got, err = ba.fit_micro(start, _micro(true), 2, 4, "sync")
    keys = {"collective_launch_s", "intra_bandwidth", "gemm_efficiency", "host_op_s",
            "memory_efficiency"} | ({"elementwise_flop_rate"} if compute_bound else set())
    assert set(ba.fitted_values(got)) == keys
    for key in keys:
        assert got[key] == pytest.approx(true[key], rel=1e-3), key
        assert "fitted" in got.constants[key].source
    assert set(err) == {"comm", "gemm", "elementwise", "optimizer"}
    assert all(v["max"] < 1e-6 for v in err.values())


def test_adam_ops_are_what_a_fused_adam_step_dispatches() -> None:
    params = torch.nn.ParameterList(torch.zeros(8) for _ in range(3))
    for t in params:
        t.grad = torch.ones_like(t)
    opt = make_optimizer("adam", params, lr=1e-3)
    opt.step()  # creates the state
    with CountOps() as ops:
        opt.step()
    assert ops.count == ba.ADAM_OPS and ops.views == 0
    assert ops.other_names["_fused_adam_"] == 1


def test_elementwise_phase_is_the_slower_of_streaming_and_compute() -> None:
    flops, elem = 1e6, 4
    streamed = stream_s(2.0 * elem * flops, TRUE)
    assert elementwise_s(flops, elem, _without_rate(TRUE)) == streamed
    assert elementwise_s(flops, elem, TRUE.with_values(elementwise_flop_rate=1e15)) == streamed
    assert elementwise_s(flops, elem, TRUE) == flops / 1e9 > streamed


def _measured(strategy: str, hw: hardware.Profile, factor: float) -> dict:
    """A strategy's summaries whose medians are ``factor`` x the model on ``hw``."""
    t = step_time(predict(strategy, SHAPE if strategy == "pp" else SHAPE.replace(ghosts=0)),
                  hw, mode="sync")
    comm, step = factor * t.comm_s, factor * t.total_s
    return {"step": {"median_s": step, "se_s": 0.01 * step},
            "comm": {"median_s": comm}, "compute": {"median_s": step - comm}}


def test_tp_calibrated_reproduces_tp_and_predicts_pp_out_of_sample() -> None:
    strategies = {s: _measured(s, TRUE, 1.3) for s in ("tp", "pp")}
    shapes = {"tp": SHAPE.replace(ghosts=0), "pp": SHAPE}
    out = ba.tp_calibrated(HW, strategies, shapes, "sync")
    fitted = HW.with_values(**out["constants"])
    tp = step_time(predict("tp", shapes["tp"]), fitted, mode="sync")
    assert tp.comm_s == pytest.approx(strategies["tp"]["comm"]["median_s"], rel=1e-4)
    assert tp.total_s - tp.comm_s == pytest.approx(strategies["tp"]["compute"]["median_s"],
                                                   rel=1e-4)
    pp = step_time(predict("pp", SHAPE), fitted, mode="sync")
    assert out["total_s"] == pytest.approx(pp.total_s)
    assert out["measured_over_predicted"] == pytest.approx(
        strategies["pp"]["step"]["median_s"] / pp.total_s)
    for key, scale in out["scales"].items():
        assert out["constants"][key] == pytest.approx(HW[key] * scale)


def test_tp_calibrated_recovers_from_a_micro_fit_that_drove_a_constant_to_zero() -> None:
    """A CI run's microbenchmarks (tiny, on a loaded machine) fitted host_op_s = 3e-17 s; at a
    width where GEMMs are memory-bound the re-fit on TP's steps then had no gradient to move
    along and kept a compute time 8x below TP's measured one. The fit starts inside the
    constants' ranges, so it reproduces TP's measured phases."""
    shape = FFNShape(64, 32, 3, 8, 8, 2, 2)
    shapes = {"tp": shape.replace(ghosts=0), "pp": shape}
    micro = HW.with_values(host_op_s=3e-17, memory_efficiency=0.03)
    strategies = {s: _measured(s, TRUE, 1.0) for s in ("tp", "pp")}
    t = step_time(predict("tp", shapes["tp"]), TRUE, mode="sync")
    strategies["tp"] = {"step": {"median_s": 8 * t.total_s, "se_s": 0.0},
                        "comm": {"median_s": t.comm_s},
                        "compute": {"median_s": 8 * t.total_s - t.comm_s}}
    out = ba.tp_calibrated(micro, strategies, shapes, "sync")
    tp = step_time(predict("tp", shapes["tp"]), micro.with_values(**out["constants"]),
                   mode="sync")
    assert tp.total_s - tp.comm_s == pytest.approx(strategies["tp"]["compute"]["median_s"],
                                                   rel=1e-3)
    assert tp.comm_s == pytest.approx(t.comm_s, rel=1e-3)


def test_statistics_helpers() -> None:
    assert ba.median_iqr([3.0, 1.0, 2.0, 4.0, 5.0]) == (3.0, 2.0, 4.0)
    assert ba.median_iqr([7.0]) == (7.0, 7.0, 7.0)
    assert math.isnan(ba.median_se([1.0]))
    assert ba.median_se([1.0, 1.0, 1.0]) == 0.0
    assert ba.median_se([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(
        ba.SE_MEDIAN * 2.0 / math.sqrt(5))
    assert ba.ratio([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == (2.0, 0.0)
    assert ba.rate_through_origin([(1.0, 10.0), (2.0, 20.0)]) == pytest.approx(10.0)


@pytest.mark.parametrize("r_cal,tp_dt,pp_verdict,tp_verdict", [
    (1.0 + ba.PP_TARGET - 1e-9, (0.9, 0.01), "PASS", "PASS"),
    (1.0 + ba.PP_TARGET + 1e-9, (1.05, 0.03), "MISS", "PASS"),
    (0.5, (1.2, 0.01), "MISS", "MISS")])
def test_checks_apply_the_targets(r_cal: float, tp_dt: tuple[float, float], pp_verdict: str,
                                  tp_verdict: str) -> None:
    pred = {"total_s": 1.0, "comm_s": 0.5, "compute_s": 0.5, "measured_over_predicted_se": 0.0}
    pp = {"step": {"median_s": r_cal}, "comm": {"median_s": 0.4}, "compute": {"median_s": 0.6},
          "prediction_tp_calibrated": {**pred, "measured_over_predicted": r_cal},
          "prediction": {**pred, "measured_over_predicted": 1.0}}
    out = ba.checks({"pp": pp}, tp_dt)
    assert out["pp_within_15pct_of_model"]["verdict"] == pp_verdict
    assert bool(out["pp_within_15pct_of_model"]["reason"]) == (pp_verdict == "MISS")
    assert out["pp_within_15pct_of_microbenchmark_model"]["verdict"] == "PASS"
    assert out["tp_no_slower_than_dtensor"]["verdict"] == tp_verdict
