"""The legacy alpha-beta constants of phantom-bench (:mod:`phantom_parallel.alphabeta`): the
time formula, its fits and the re-calibration on a measured run."""

from __future__ import annotations

import json
import math

import pytest

from phantom_parallel import alphabeta
from phantom_parallel.alphabeta import AlphaBeta, calibrate, predict_time
from phantom_parallel.costs import FFNShape, predict

# --------------------------------------------------------------------------------------------
# time formula and fits
# --------------------------------------------------------------------------------------------


def test_predict_time() -> None:
    s = FFNShape(64, 1024, 4, 8, 64, 8, 32)
    c = predict("pp", s)
    k = AlphaBeta(alpha_s=1e-5, beta_bytes_per_s=1e10, flop_rate=1e12)
    t = predict_time(c, k)
    assert t.comm_s == pytest.approx(c.n_comm_calls * 1e-5 + c.wire_bytes / 1e10)
    assert t.compute_s == pytest.approx(c.matmul_flops / 1e12)
    assert t.elementwise_s == 0
    assert t.total_s == pytest.approx(t.comm_s + t.compute_s)
    t2 = predict_time(c, AlphaBeta(1e-5, 1e10, 1e12, elementwise_rate=1e9))
    assert t2.elementwise_s == pytest.approx(c.elementwise_flops / 1e9)


def test_calibrate_recovers_constants() -> None:
    true = AlphaBeta(alpha_s=2e-5, beta_bytes_per_s=5e9, flop_rate=3e11)
    comm, comp = [], []
    for strategy in ("tp", "pp"):
        for p in (2, 4, 8):
            for B in (16, 64, 256):
                c = predict(strategy, FFNShape(64, 512, 4, 8, B, p, 8))
                t = predict_time(c, true)
                comm.append((t.comm_s, c.n_comm_calls, c.wire_bytes))
                comp.append((t.compute_s, c.matmul_flops))
    fit = calibrate(comm, comp)
    assert fit.alpha_s == pytest.approx(true.alpha_s, rel=1e-6)
    assert fit.beta_bytes_per_s == pytest.approx(true.beta_bytes_per_s, rel=1e-6)
    assert fit.flop_rate == pytest.approx(true.flop_rate, rel=1e-9)
    assert AlphaBeta.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


def test_calibrate_is_non_negative() -> None:
    # data that an unconstrained fit explains with a negative latency
    comm = [(1.0, 10, 1e9), (2.0, 1, 2e9), (3.0, 5, 3e9)]
    fit = calibrate(comm, [(1.0, 1e9)])
    assert fit.alpha_s >= 0 and fit.beta_bytes_per_s > 0
    assert fit.alpha_s == pytest.approx(0.0, abs=1e-12)
    assert fit.beta_bytes_per_s == pytest.approx(1e9)
    free = calibrate([], [(2.0, 1e9)])
    assert free.alpha_s == 0 and math.isinf(free.beta_bytes_per_s) and free.flop_rate == 5e8
    assert json.loads(json.dumps(free.to_dict()))["beta_bytes_per_s"] == "inf"
    with pytest.raises(ValueError):
        calibrate([], [])



def test_extended_constants_default_to_the_basic_model() -> None:
    c = predict("pp", FFNShape(64, 1024, 4, 8, 64, 8, 32))
    basic = AlphaBeta(1e-5, 1e10, 1e12, elementwise_rate=1e9)
    same = AlphaBeta(1e-5, 1e10, 1e12, elementwise_rate=1e9, alpha_all_gather_s=None)
    assert predict_time(c, basic) == predict_time(c, same)
    assert predict_time(c, basic).optimizer_s == 0


def test_predict_time_extended() -> None:
    s = FFNShape(64, 512, 4, 8, 64, 2, 16)
    c = predict("pp", s)
    k = AlphaBeta(alpha_s=1.0, beta_bytes_per_s=1e9, flop_rate=1e11, elementwise_rate=1e9,
                  alpha_all_reduce_s=3e-4, alpha_all_gather_s=2e-4, alpha_reduce_scatter_s=5e-4,
                  matmul_call_s=1e-5, optimizer_s_per_element=1e-9, optimizer_s_per_tensor=2e-5)
    t = predict_time(c, k)
    comm = 1 * 3e-4 + 4 * 2e-4 + 4 * 5e-4 + c.wire_bytes / 1e9
    assert c.comm_calls == {"all_reduce": 1, "all_gather": 4, "reduce_scatter": 4}
    assert t.comm_s == pytest.approx(comm)
    assert t.matmul_overhead_s == pytest.approx(c.matmul_calls * 1e-5)
    assert t.compute_s == pytest.approx(c.matmul_flops / 1e11 + c.matmul_calls * 1e-5)
    assert t.optimizer_s == pytest.approx(c.params_per_rank * 1e-9 + c.param_tensors_per_rank * 2e-5)
    assert t.total_s == pytest.approx(t.comm_s + t.compute_s + t.elementwise_s + t.optimizer_s)
    assert k.alpha("all_gather") == 2e-4 and AlphaBeta(1.0, 1e9, 1e11).alpha("all_gather") == 1.0
    assert AlphaBeta.from_dict(json.loads(json.dumps(k.to_dict()))) == k
    with pytest.raises(ValueError, match="alpha_all_gather_s"):
        AlphaBeta(1.0, 1e9, 1e11, alpha_all_gather_s=-1.0)
    with pytest.raises(ValueError, match="unknown collective"):
        k.alpha("broadcast")


def test_calibrate_collectives_recovers_per_op_latency() -> None:
    alpha = {"all_reduce": 3e-4, "all_gather": 2e-4, "reduce_scatter": 6e-4}
    beta = 1e9
    rows = [(op, a + w / beta, w) for op, a in alpha.items() for w in (0.0, 4e3, 1e6, 8e6)]
    fit = alphabeta.calibrate_collectives(rows)
    for op, a in alpha.items():
        assert fit[f"alpha_{op}_s"] == pytest.approx(a, rel=1e-6)
    assert fit["beta_bytes_per_s"] == pytest.approx(beta, rel=1e-6)
    only = alphabeta.calibrate_collectives([("all_gather", 1e-4, 0.0), ("all_gather", 1e-4, 1e3)])
    assert set(only) == {"alpha_all_gather_s", "beta_bytes_per_s"}
    assert math.isinf(only["beta_bytes_per_s"])
    with pytest.raises(ValueError, match="unknown collective"):
        alphabeta.calibrate_collectives([("bcast", 1.0, 1.0)])


def test_calibrate_matmul_and_optimizer() -> None:
    rate, call = 1e11, 2e-5
    rows = [(f / rate + call, f) for f in (1e5, 1e7, 1e9)]
    got_rate, got_call = alphabeta.calibrate_matmul(rows)
    assert got_rate == pytest.approx(rate, rel=1e-6) and got_call == pytest.approx(call, rel=1e-6)
    with pytest.raises(ValueError):
        alphabeta.calibrate_matmul([(1.0, 0.0)])
    # overhead only (time independent of FLOPs): rate through the origin, no overhead
    assert alphabeta.calibrate_matmul([(1.0, 1.0), (1.0, 2.0)]) == (pytest.approx(5 / 3), 0.0)
    e_s, t_s = 2e-9, 3e-5
    opt_rows = [(e * e_s + n * t_s, e, n) for e, n in ((1e3, 2), (1e6, 2), (1e4, 16), (4e6, 16))]
    got_e, got_t = alphabeta.calibrate_optimizer(opt_rows)
    assert got_e == pytest.approx(e_s, rel=1e-6) and got_t == pytest.approx(t_s, rel=1e-6)
    with pytest.raises(ValueError, match="> 0"):
        alphabeta.calibrate_optimizer([(0.0, 1.0, 1.0)])


def _extended_constants() -> AlphaBeta:
    return AlphaBeta(alpha_s=4e-4, beta_bytes_per_s=1e9, flop_rate=1e11, elementwise_rate=2e9,
                     alpha_all_reduce_s=5e-4, alpha_all_gather_s=6e-4, alpha_reduce_scatter_s=7e-4,
                     matmul_call_s=3e-6, optimizer_s_per_element=2e-9, optimizer_s_per_tensor=2e-5)


def test_recalibrate_reproduces_the_measured_run_phase_by_phase() -> None:
    k = _extended_constants()
    tp = predict("tp", FFNShape(64, 512, 4, 8, 64, 2))
    r = alphabeta.recalibrate(k, tp, comm_s=3e-3, compute_s=3.5e-3, optimizer_s=2e-3)
    t = predict_time(tp, r.constants)
    assert t.comm_s == pytest.approx(3e-3)
    assert t.compute_s + t.elementwise_s == pytest.approx(3.5e-3)
    assert t.optimizer_s == pytest.approx(2e-3)
    before = predict_time(tp, k)
    assert r.comm_scale == pytest.approx(3e-3 / before.comm_s)
    assert r.compute_scale == pytest.approx(3.5e-3 / (before.compute_s + before.elementwise_s))
    assert r.optimizer_scale == pytest.approx(2e-3 / before.optimizer_s)
    # every constant of a group moves by its group's factor: per-op alphas keep their ratios
    assert r.constants.alpha("reduce_scatter") / r.constants.alpha("all_gather") == pytest.approx(7 / 6)
    assert r.constants.beta_bytes_per_s == pytest.approx(1e9 / r.comm_scale)
    assert r.constants.matmul_call_s == pytest.approx(3e-6 * r.compute_scale)
    # so another strategy's prediction scales phase by phase (out of sample)
    pp = predict("pp", FFNShape(64, 512, 4, 8, 64, 2, 16))
    a, b = predict_time(pp, k), predict_time(pp, r.constants)
    assert b.comm_s == pytest.approx(a.comm_s * r.comm_scale)
    assert b.compute_s + b.elementwise_s == pytest.approx(
        (a.compute_s + a.elementwise_s) * r.compute_scale)
    assert b.optimizer_s == pytest.approx(a.optimizer_s * r.optimizer_scale)


def test_recalibrate_folds_the_optimizer_into_compute_when_not_measured_apart() -> None:
    k = _extended_constants()
    tp = predict("tp", FFNShape(64, 256, 2, 8, 32, 2))
    r = alphabeta.recalibrate(k, tp, comm_s=1e-3, compute_s=4e-3)
    t = predict_time(tp, r.constants)
    assert r.optimizer_scale is None
    assert t.compute_s + t.elementwise_s + t.optimizer_s == pytest.approx(4e-3)
    assert t.total_s == pytest.approx(5e-3)


def test_recalibrate_rejects_what_it_cannot_scale() -> None:
    k = _extended_constants()
    serial = predict("serial", FFNShape(64, 256, 2, 8, 32))
    with pytest.raises(ValueError, match="communication"):
        alphabeta.recalibrate(k, serial, comm_s=1e-3, compute_s=1e-3)
    same = alphabeta.recalibrate(k, serial, comm_s=0.0, compute_s=1e-3)  # nothing to scale: kept
    assert same.comm_scale == 1.0
    with pytest.raises(ValueError, match="compute_s"):
        alphabeta.recalibrate(k, serial, comm_s=0.0, compute_s=float("nan"))
    with pytest.raises(ValueError, match="optimizer"):
        alphabeta.recalibrate(AlphaBeta(1e-4, 1e9, 1e11), serial, comm_s=0.0, compute_s=1e-3,
                          optimizer_s=1e-3)
