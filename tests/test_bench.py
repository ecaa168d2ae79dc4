"""``phantom-bench`` smoke test: the CLI runs on p=2 gloo with tiny sizes and reports every field.

No timing targets are asserted: on a shared 2-core machine step times are noise; the targets
are the benchmark's printed PASS/MISS lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phantom_parallel import costs, hardware
from phantom_parallel.bench_analysis import fitted_values
from phantom_parallel.bench_steps import BENCH_STRATEGIES
from phantom_parallel.timing import step_time
from tests.scripts import load_script

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


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
                   "timing.step_time on profile local-cpu", "gemm_efficiency", "PP/TP",
                   "TP/DTensor", "meas/pred", "PP measured/predicted", "TP-calib.", "diagnostic",
                   "torch.profiler"):
        assert needle in text, needle
    for s in BENCH_STRATEGIES:
        assert any(line.split()[:1] == [s] for line in text.splitlines()), s
    assert text.count("PASS") + text.count("MISS") >= 2
    assert text.count("phantom-bench  p=2") == 1  # only rank 0 prints

    d = json.loads(out.read_text())
    c, cal = d["config"], d["calibration"]
    assert c["world_size"] == 2 and c["ghosts"] == 2 and c["hardware"] == "local-cpu"
    assert d["env"]["threads_per_rank"] == 1 and len(d["env"]["loadavg_before"]) == 3
    assert d["env"]["torch"] and d["env"]["host"] and d["env"]["backend"] == "gloo"
    assert cal["profile"] == "local-cpu" and cal["mode"] == "sync"
    assert set(cal["constants"]) == set(cal["profile_values"])
    assert all(v > 0 for v in cal["constants"].values())
    assert set(cal["fit_rel_err"]) == {"comm", "gemm", "elementwise", "optimizer"}
    assert cal["matmul"] and cal["matmul_concurrent"] and cal["elementwise_concurrent"]
    for op in ("all_reduce", "all_gather", "reduce_scatter"):
        assert any(r["op"] == op and r["seconds"] > 0 for r in cal["in_step_collectives"])
    assert {r["set"] for r in cal["optimizer"]} >= {"pp", "tp", "dtensor"}
    for s in BENCH_STRATEGIES:
        st = d["strategies"][s]
        assert len(st["samples"]["step_s"]) == 4
        assert st["step"]["median_s"] > 0 and st["step"]["iqr_s"] >= 0
        assert st["matmul_flops"] > 0 and st["achieved_flop_rate"] > 0
        assert (st["comm"] is None) == (s == "dtensor")
    assert d["strategies"]["pp"]["param_tensors_per_rank"] == 2 + 4 * 3 + 2
    assert d["strategies"]["tp"]["param_tensors_per_rank"] == 2 * 5
    # every prediction is timing.step_time on the profile with the reported constants
    shape = costs.FFNShape(c["d_in"], c["width"], c["layers"], c["d_out"], c["batch"],
                           c["world_size"], c["ghosts"])
    micro_hw = hardware.load("local-cpu").with_values(**cal["constants"])
    for s in ("pp", "tp"):
        pred = d["strategies"][s]["prediction"]
        cost = costs.predict(s, shape if s == "pp" else shape.replace(ghosts=0),
                             activation=c["activation"])
        assert pred["total_s"] == pytest.approx(step_time(cost, micro_hw, mode="sync").total_s)
        assert pred["measured_over_predicted"] == pytest.approx(
            d["strategies"][s]["step"]["median_s"] / pred["total_s"])
        assert pred["adam_microbenchmark_s"] > 0
        assert d["strategies"][s]["comm"]["median_s"] > 0
    assert set(d["ratios"]) == {"pp_over_tp", "pp_over_tp_se", "tp_over_dtensor",
                                "tp_over_dtensor_se"}
    assert set(d["checks"]) == {"pp_within_15pct_of_model", "tp_no_slower_than_dtensor",
                                "pp_within_15pct_of_microbenchmark_model"}
    for check in d["checks"].values():
        assert check["verdict"] in ("PASS", "MISS")
    cal_pred = d["strategies"]["pp"]["prediction_tp_calibrated"]
    assert d["checks"]["pp_within_15pct_of_model"]["ratio"] == pytest.approx(
        d["strategies"]["pp"]["step"]["median_s"] / cal_pred["total_s"])
    # the TP-calibrated constants reproduce TP's measured phases (in sample)
    tp_hw = hardware.load("local-cpu").with_values(**cal_pred["constants"])
    assert set(cal_pred["constants"]) == set(fitted_values(tp_hw))
    t = step_time(costs.predict("tp", shape.replace(ghosts=0)), tp_hw, mode="sync")
    tp = d["strategies"]["tp"]
    assert t.comm_s == pytest.approx(tp["comm"]["median_s"], rel=1e-3)
    assert t.total_s - t.comm_s == pytest.approx(tp["compute"]["median_s"], rel=1e-3)
    assert d["profiles"]["pp"] and d["profiles"]["tp"]


def test_cli_rejects_a_single_process() -> None:
    res = subprocess.run([sys.executable, "-m", "phantom_parallel.bench", "--width", "32"],
                         capture_output=True, text=True, env=ENV, timeout=60, check=False)
    assert res.returncode != 0 and "p >= 2" in res.stderr


@pytest.mark.parametrize("argv,flag", [
    (["--width", "33"], "--width=33"), (["--width", "32", "--ghosts", "17"], "--ghosts=17"),
    (["--hardware", "no-such-gpu"], "--hardware 'no-such-gpu'"),
    (["--threads", "-1"], "--threads=-1 must be >= 1"),
    (["--micro-time", "-1"], "--micro-time=-1.0 must be > 0"),
    (["--micro-time", "nan"], "--micro-time=nan must be > 0"),
    (["--json", "{tmp}/notdir/x.json"], "--json {tmp}/notdir/x.json: {tmp}/notdir is a file"),
    (["--json", "{tmp}"], "--json {tmp}: is a folder")])
def test_bad_flags_are_refused_naming_the_flag(argv: list[str], flag: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from phantom_parallel import bench

    (tmp_path / "notdir").write_text("")
    with pytest.raises(SystemExit) as exc:
        bench._validate(bench.parse_args([a.format(tmp=tmp_path) for a in argv]), 2)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"phantom-bench: error: {flag.format(tmp=tmp_path)}"), err


def test_an_unwritable_json_is_refused_once_before_measuring_on_two_ranks(tmp_path: Path) -> None:
    """Every rank checks --json up front and refuses alike; the line is said once (rank 0)."""
    (tmp_path / "notdir").write_text("")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "phantom_parallel.bench", "--width", "32", "--json",
           str(tmp_path / "notdir" / "x.json")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120, check=False)
    assert res.returncode != 0 and res.stdout == ""
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("phantom-bench: error:")]
    assert lines == [f"phantom-bench: error: --json {tmp_path}/notdir/x.json: {tmp_path}/notdir "
                     "is a file, not a folder"], res.stderr
    assert "phantom_parallel/" not in res.stderr  # no rank's traceback (torchrun has its own)


def test_model_accuracy_summarises_the_committed_benchmark_runs() -> None:
    """benchmarks/model_accuracy.py on the runs quoted in the READMEs: per-run rows are the
    files' own numbers, and the per-configuration summary counts their verdicts."""
    root = Path(__file__).resolve().parents[1]
    mod = load_script("benchmarks/model_accuracy.py")
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


@pytest.mark.parametrize("strategy", ["tp", "pp"])
def test_bench_steps_use_the_trainers_optimizer(strategy: str) -> None:
    """The benchmark times the step the trainer runs: fused Adam over plain parameters
    (:func:`make_optimizer`), not torch's per-tensor default on CPU (five times slower here)."""
    import torch

    from phantom_parallel.bench_steps import StrategyRunner
    from phantom_parallel.emulate_comm import StandInComm
    from phantom_parallel.models import FFNConfig

    runner = StrategyRunner(strategy, FFNConfig(8, 32, 2, 4), StandInComm(2, 0), ghosts=2,
                            batch=4, seed=0, lr=1e-3, device=torch.device("cpu"),
                            dtype=torch.float32)
    assert runner.optimizer.defaults["fused"] is True


def test_compute_after_collectives_runs_and_refuses_bad_input(tmp_path: Path) -> None:
    """benchmarks/compute_after_collectives.py on two gloo ranks, tiny: one row per
    (floats, all-reduces), the first count the baseline; bad input is one usage line, no JSON."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compute_after_collectives.py"
    out = tmp_path / "after.json"
    args = ["--width", "16", "--layers", "1", "--batch", "4", "--collectives", "0", "2",
            "--numel", "4", "--rounds", "1", "--block", "2", "--warmup", "1"]
    res = subprocess.run([sys.executable, str(script), *args, "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["numel"], r["collectives_before"]) for r in rows] == [(4, 0), (4, 2)]
    assert rows[0]["vs_baseline"] == 1.0 and all(r["step_s"] > 0 for r in rows)
    assert all(0.0 <= r["migrated"] <= 1.0 for r in rows)
    res = subprocess.run([sys.executable, str(script), *args, "--pin", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "pinned to a core each" in res.stdout and json.loads(out.read_text())["args"]["pin"]
    bad = tmp_path / "bad.json"
    res = subprocess.run([sys.executable, str(script), "--numel", "0", "--json", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--numel" in res.stderr and not bad.exists()
