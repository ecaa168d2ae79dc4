"""``phantom-bench`` smoke test: the CLI runs on p=2 gloo with tiny sizes and reports every field.

No timing targets are asserted: on a shared 2-core machine step times are noise; the targets
are the benchmark's printed PASS/MISS lines.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phantom_parallel import alphabeta, costs
from phantom_parallel.bench import (
    BENCH_STRATEGIES,
    median_iqr,
    median_se,
    rate_through_origin,
    ratio,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_statistics_helpers() -> None:
    assert median_iqr([3.0, 1.0, 2.0, 4.0, 5.0]) == (3.0, 2.0, 4.0)
    assert median_iqr([7.0]) == (7.0, 7.0, 7.0)
    assert math.isnan(median_se([1.0]))
    assert median_se([1.0, 1.0, 1.0]) == 0.0
    r, se = ratio([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert (r, se) == (2.0, 0.0)
    assert rate_through_origin([(1.0, 10.0), (2.0, 20.0)]) == pytest.approx(10.0)


def test_cli_runs_on_two_gloo_ranks_and_reports_every_field(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "phantom_parallel.bench", "--width", "32", "--layers", "3", "--ghosts", "2",
           "--batch", "8", "--steps", "4", "--warmup", "1", "--rounds", "2",
           "--micro-time", "0.002", "--micro-trials", "2", "--in-step-calls", "3",
           "--profile-steps", "1",
           "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    for needle in ("phantom-bench  p=2 gloo cpu float32", "loadavg", "matmul rate",
                   "elementwise rate", "alpha", "alpha in step", "Adam step", "extended", "PP/TP", "TP/DTensor", "meas/pred",
                   "PP measured/predicted", "TP-calib.", "diagnostic", "torch.profiler"):
        assert needle in text, needle
    for s in BENCH_STRATEGIES:
        assert any(line.split()[:1] == [s] for line in text.splitlines()), s
    assert text.count("PASS") + text.count("MISS") >= 2
    assert text.count("phantom-bench  p=2") == 1  # only rank 0 prints

    d = json.loads(out.read_text())
    assert d["config"]["world_size"] == 2 and d["config"]["ghosts"] == 2
    assert d["env"]["threads_per_rank"] == 1 and len(d["env"]["loadavg_before"]) == 3
    assert d["env"]["torch"] and d["env"]["host"] and d["env"]["backend"] == "gloo"
    k = d["calibration"]["constants"]
    assert k["alpha_s"] >= 0 and k["flop_rate"] > 0 and k["elementwise_rate"] > 0
    assert d["calibration"]["matmul"] and d["calibration"]["collectives"]
    for s in BENCH_STRATEGIES:
        st = d["strategies"][s]
        assert len(st["samples"]["step_s"]) == 4
        assert st["step"]["median_s"] > 0 and st["step"]["iqr_s"] >= 0
        assert st["matmul_flops"] > 0 and st["achieved_flop_rate"] > 0
        assert (st["comm"] is None) == (s == "dtensor")
    cal = d["calibration"]
    kb = cal["constants_basic"]
    assert kb["alpha_s"] >= 0 and kb["flop_rate"] > 0 and kb["elementwise_rate"] > 0
    for op in ("all_reduce", "all_gather", "reduce_scatter"):
        assert k[f"alpha_{op}_s"] >= 0
        assert any(r["op"] == op and r["seconds"] > 0 for r in cal["in_step_collectives"])
    assert k["matmul_call_s"] >= 0 and k["optimizer_s_per_element"] >= 0
    assert k["optimizer_s_per_tensor"] >= 0
    assert {r["set"] for r in cal["optimizer"]} >= {"pp", "tp", "dtensor"}
    assert d["strategies"]["pp"]["param_tensors_per_rank"] == 2 + 4 * 3 + 2
    assert d["strategies"]["tp"]["param_tensors_per_rank"] == 2 * 5
    for s in ("pp", "tp"):
        for key in ("prediction", "prediction_basic"):
            pred = d["strategies"][s][key]
            assert pred["total_s"] > 0 and pred["measured_over_predicted"] > 0
        assert d["strategies"][s]["prediction"]["optimizer_s"] > 0
        assert d["strategies"][s]["prediction_basic"]["optimizer_s"] == 0
        assert d["strategies"][s]["prediction"]["adam_microbenchmark_s"] > 0
        assert d["strategies"][s]["comm"]["median_s"] > 0
    assert set(d["ratios"]) == {"pp_over_tp", "pp_over_tp_se", "tp_over_dtensor",
                                "tp_over_dtensor_se"}
    for check in d["checks"].values():
        assert check["verdict"] in ("PASS", "MISS")
    assert set(d["checks"]) == {"pp_within_15pct_of_model", "tp_no_slower_than_dtensor",
                                "pp_within_15pct_of_microbenchmark_model"}
    assert "TP steps" in d["checks"]["pp_within_15pct_of_model"]["model"]
    cal_pred = d["strategies"]["pp"]["prediction_tp_calibrated"]
    assert cal_pred["comm_scale"] > 0 and cal_pred["compute_scale"] > 0
    assert cal_pred["optimizer_scale"] > 0
    assert cal_pred["total_s"] == pytest.approx(
        cal_pred["comm_s"] + cal_pred["compute_s"] + cal_pred["optimizer_s"])
    assert d["checks"]["pp_within_15pct_of_model"]["ratio"] == pytest.approx(
        d["strategies"]["pp"]["step"]["median_s"] / cal_pred["total_s"])
    # the re-calibrated constants reproduce TP's measured phases (in sample) ...
    tp = d["strategies"]["tp"]
    c = d["config"]
    tp_cost = costs.predict("tp", costs.FFNShape(c["d_in"], c["width"], c["layers"], c["d_out"],
                                                 c["batch"], c["world_size"]),
                            optimizer="adam", activation=c["activation"])
    t = alphabeta.predict_time(tp_cost, alphabeta.AlphaBeta.from_dict(cal_pred["constants"]))
    assert t.comm_s == pytest.approx(tp["comm"]["median_s"])
    assert t.compute_s + t.elementwise_s == pytest.approx(tp["compute_no_opt"]["median_s"])
    assert t.optimizer_s == pytest.approx(tp["opt"]["median_s"])
    # ... and are the microbenchmark constants scaled group by group
    micro = alphabeta.AlphaBeta.from_dict(d["calibration"]["constants"])
    rec = alphabeta.AlphaBeta.from_dict(cal_pred["constants"])
    assert rec.alpha("all_gather") == pytest.approx(micro.alpha("all_gather")
                                                    * cal_pred["comm_scale"])
    assert rec.flop_rate == pytest.approx(micro.flop_rate / cal_pred["compute_scale"])
    assert d["profiles"]["pp"] and d["profiles"]["tp"]


def test_cli_rejects_a_single_process() -> None:
    res = subprocess.run([sys.executable, "-m", "phantom_parallel.bench", "--width", "32"],
                         capture_output=True, text=True, env=ENV, timeout=60, check=False)
    assert res.returncode != 0 and "p >= 2" in res.stderr


def test_model_accuracy_summarises_the_committed_benchmark_runs() -> None:
    """benchmarks/model_accuracy.py on the runs quoted in the READMEs: per-run rows are the
    files' own numbers, and the per-configuration summary counts their verdicts."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("model_accuracy",
                                                  root / "benchmarks" / "model_accuracy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    files = sorted((root / "benchmarks" / "results" / "2026-11-22-cpu-p2").glob("*.json"))
    assert len(files) == 11
    rows = [mod.run_row(f) for f in files]
    for f, r in zip(files, rows, strict=True):
        d = json.loads(f.read_text())
        assert r["pp_ms"] == pytest.approx(1e3 * d["strategies"]["pp"]["step"]["median_s"])
        assert r["pp_verdict"] == d["checks"]["pp_within_15pct_of_model"]["verdict"]
    by_width = {s["width"]: s for s in mod.summarise(rows)}
    assert set(by_width) == {512, 1024, 2048}
    for n, s in by_width.items():
        mine = [r for r in rows if r["width"] == n]
        assert s["runs"] == len(mine)
        assert s["pp_target_met"] == sum(r["pp_verdict"] == "PASS" for r in mine)
        assert s["meas_over_pred_min"] == min(r["pp_meas_over_pred"] for r in mine)
    with pytest.raises(SystemExit, match="not a phantom-bench"):
        mod.run_row(root / "pyproject.toml")
