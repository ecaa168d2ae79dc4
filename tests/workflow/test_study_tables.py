"""The analysis behind the verdict, without running anything: crossings of the same-loss
target interpolated between evaluations, energy up to an evaluation, evaluations from
evals.csv or epochs.csv, the Pareto front, t intervals, the hardness verdict, oversubscription."""

import json
import math
import sys

import pandas as pd
import pytest

from .helpers import REPO

sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "notebooks"))
import aggregate
import derive
import lr_sweep
import run_curves
import studystats


def _curve(steps, losses, **cols):
    df = pd.DataFrame({"step": steps, "val_loss": losses})
    df["samples"] = df["step"] * 10
    for c in ("train_time_s", "measured_time_s", "energy_j", "device_hours"):
        df[c] = cols.get(c, df["step"] * {"train_time_s": 0.1, "measured_time_s": 0.2,
                                          "energy_j": 5.0, "device_hours": 1e-4}[c])
    return df


def test_crossing_is_interpolated_between_the_bracketing_evaluations():
    c = _curve([10, 20, 30], [1.0, 0.6, 0.2])
    hit = derive.crossing(c, 0.5)  # between steps 20 (0.6) and 30 (0.2): f = 0.25
    assert hit["reached"] and hit["crossing"] == "interpolated"
    assert hit["step_at_target"] == pytest.approx(22.5)
    assert hit["samples_at_target"] == pytest.approx(225)
    assert hit["energy_j_at_target"] == pytest.approx(112.5)  # linear between evaluations
    assert hit["time_at_target_s"] == pytest.approx(2.25)
    assert hit["device_hours_at_target"] == pytest.approx(22.5e-4)


def test_crossing_before_the_first_evaluation_and_never():
    c = _curve([10, 20], [0.4, 0.3])
    hit = derive.crossing(c, 0.5)
    assert hit["reached"] and hit["crossing"].startswith("at first evaluation")
    assert hit["step_at_target"] == 10
    never = derive.crossing(c, 0.1)
    assert not never["reached"] and never["crossing"] == "never"
    assert math.isnan(never["energy_j_at_target"])


def _events(epochs, t0=0, dur=10_000_000_000, gap=1_000_000_000):
    ev = [{"t_ns": t0, "event": "measure_start", "epoch": 0, "step": 0}]
    t = t0
    for e in range(epochs):
        ev.append({"t_ns": t, "event": "epoch_start", "epoch": e, "step": 0})
        t += dur
        ev.append({"t_ns": t, "event": "epoch_end", "epoch": e, "step": 0})
    t += gap  # e.g. the final checkpoint: measured, outside every epoch
    ev.append({"t_ns": t, "event": "measure_end", "epoch": epochs, "step": 0})
    return ev


def test_energy_until_uses_each_epochs_energy_at_constant_power():
    events = _events(2)
    energy = {"total_j": 330.0, "per_epoch_j": {"0": 100.0, "1": 200.0},
              "windows_ns": [[0, 21_000_000_000]]}
    segs = run_curves.power_segments(events, energy)
    assert run_curves.energy_until(segs, 5_000_000_000) == pytest.approx(50.0)   # half of epoch 0
    assert run_curves.energy_until(segs, 15_000_000_000) == pytest.approx(200.0)  # + half of epoch 1
    assert run_curves.energy_until(segs, 21_000_000_000) == pytest.approx(330.0)  # total, the rest after
    windows = run_curves.measured_windows(events, energy)
    assert run_curves.measured_until(windows, 15_000_000_000) == pytest.approx(15.0)


def test_energy_without_per_epoch_energy_is_total_at_constant_power():
    events = _events(1)
    energy = {"total_j": 110.0}
    segs = run_curves.power_segments(events, energy)
    assert run_curves.energy_until(segs, 5_500_000_000) == pytest.approx(55.0)


def _run_folder(tmp_path, with_evals):
    (tmp_path / "epochs.csv").write_text(
        "epoch,step,train_loss,val_loss,t_ns\n0,4,1.0,0.5,10000000000\n1,8,0.5,0.25,20000000000\n")
    rows = ["step,epoch,loss,step_time_s,compute_time_s,comm_time_s,comm_calls,comm_bytes,samples_per_s,t_ns"]
    rows += [f"{s},{(s - 1) // 4},1.0,0.5,0.5,0,0,0,1,{s}" for s in range(1, 9)]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    if with_evals:
        (tmp_path / "evals.csv").write_text(
            "step,samples,epoch,val_loss,train_time_s,t_ns\n"
            "2,20,0,0.8,1.0,5000000000\n4,40,0,0.5,2.0,10000000000\n"
            "6,60,1,0.3,3.0,15000000000\n8,80,1,0.25,4.0,20000000000\n")


def test_evaluations_from_evals_csv_or_epochs_csv(tmp_path):
    _run_folder(tmp_path, with_evals=False)
    df, source = run_curves.evaluations(tmp_path, batch_size=10)
    assert source == "epochs.csv"
    assert df["step"].tolist() == [4, 8] and df["samples"].tolist() == [40, 80]
    assert df["train_time_s"].tolist() == pytest.approx([2.0, 4.0])  # cumulative step_time_s
    _run_folder(tmp_path, with_evals=True)
    df, source = run_curves.evaluations(tmp_path, batch_size=10)
    assert source == "evals.csv" and df["step"].tolist() == [2, 4, 6, 8]


def test_oversubscription_from_the_manifest():
    m = {"config": {"device": "cpu", "threads": 1}, "hosts": ["h"], "ranks_per_host": {"h": 4},
         "cpu_count": 2}
    o = aggregate.oversubscription(m, 4, 1)
    assert o["oversubscribed"] and o["cores"] == 2 and o["cores_source"] == "manifest.json cpu_count"
    m["ranks_per_host"] = {"h": 2}
    assert not aggregate.oversubscription(m, 2, 1)["oversubscribed"]
    del m["cpu_count"]
    assert "os.cpu_count()" in aggregate.oversubscription(m, 2, 1)["cores_source"]


def test_t_interval_matches_the_textbook():
    mean, _lo, hi, n = studystats.t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # t_{0.975, 4} = 2.776, sd = 1.5811, sd/sqrt(5) = 0.7071
    assert (mean, n) == (3.0, 5)
    assert hi - mean == pytest.approx(2.7764 * 0.70711, rel=1e-3)
    assert math.isnan(studystats.t_interval([1.0])[1])


def test_pareto_front_treats_equal_losses_as_equal():
    # serial and TP of one width: same loss up to rounding, TP costs more -> TP not on the front
    front = studystats.pareto_front([1.0, 2.0, 3.0, 0.5], [0.1, 0.1 * (1 + 1e-6), 0.05, 0.2])
    assert front == [True, False, True, True]


def _study(rows):
    base = {"ablation_arm": False, "oversubscribed": False, "energy_method": "model",
            "final_test_loss": math.nan, "samples": 100, "in_quality_cost": True,
            "energy_j": 1.0, "device_hours": 1.0, "params_total": 10}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_hardness_verdict():
    hard = {"strategy": "serial", "ranks": 1, "width": 64, "margin": 0.1}
    rows = []
    for s, (full, half) in enumerate([(1.0, 1.2), (1.0, 1.25), (1.0, 1.22)]):
        rows += [{"strategy": "serial", "p": 1, "n": 64, "k": 0, "seed": s, "final_val_loss": full,
                  "run": f"a{s}"},
                 {"strategy": "serial", "p": 1, "n": 32, "k": 0, "seed": s, "final_val_loss": half,
                  "run": f"b{s}"}]
    t = derive.hardness_table(_study(rows), hard, 0.95)
    assert t["passed"].all() and t["verdict"].iloc[0].startswith("PASS")
    hard["margin"] = 0.3
    assert not derive.hardness_table(_study(rows), hard, 0.95)["passed"].any()


def test_same_loss_target_comes_from_the_reference_and_every_comparator_is_a_row():
    rows, curves = [], []
    cfgs = {("pp", 2, 64, 4): 0.30, ("serial", 1, 64, 0): 0.25, ("tp", 2, 64, 0): 0.25,
            ("tp", 2, 128, 0): 0.20}
    for (strategy, p, n, k), final in cfgs.items():
        for s in (0, 1):
            run = f"{strategy}-p{p}-n{n}-k{k}-s{s}"
            rows.append({"strategy": strategy, "p": p, "n": n, "k": k, "seed": s, "run": run,
                         "final_val_loss": final})
            c = _curve([10, 20, 30], [0.5, 0.3, final])
            c["run"], c["eval_source"] = run, "evals.csv"
            curves.append(c)
    plan = {"judged": [(("pp", 2, 64, 4), "run"), (("serial", 1, 64, 0), "serial comparator"),
                       (("tp", 2, 64, 0), "tp comparator")],
            "reference": ("tp", 2, 128, 0), "tolerance": 0.02, "target_val_loss": None}
    t = derive.same_loss_table(_study(rows), pd.concat(curves), plan)
    assert t["target_val_loss"].iloc[0] == pytest.approx(0.20 * 1.02)
    assert "reference TP n=128, p=2" in t["target_source"].iloc[0]
    assert set(t["role"]) == {"run", "serial comparator", "tp comparator",
                              "reference (sets the target; not judged)"}
    assert not t[t["strategy"] == "pp"]["reached"].any()  # PP never reaches 0.204
    for col in ("config", "strategy", "p", "n", "k", "seed", "reached", "step_at_target",
                "energy_j_at_target", "device_hours_at_target", "energy_method",
                "target_val_loss", "target_source"):
        assert col in t, col


def test_frontier_rejects_runs_of_different_sample_counts():
    rows = [{"strategy": "serial", "p": 1, "n": 64, "k": 0, "seed": 0, "run": "a",
             "final_val_loss": 0.1, "samples": 100},
            {"strategy": "serial", "p": 1, "n": 32, "k": 0, "seed": 0, "run": "b",
             "final_val_loss": 0.2, "samples": 200}]
    with pytest.raises(SystemExit, match="samples"):
        derive.frontier_table(_study(rows))


def test_inference_table(tmp_path):
    path = tmp_path / "tp-p2-n64-k0-r0.json"
    path.write_text(json.dumps({"strategy": "tp", "p": 2, "n": 64, "k": 0, "batch": 32,
                                "latency_s": 0.01, "throughput_samples_per_s": 3200.0,
                                "energy_j_per_sample": 0.001, "energy_method": "model"}))
    spec = {"tp-p2-n64-k0-r0": {"strategy": "tp", "p": 2, "n": 64, "k": 0, "repeat": 0}}
    t = derive.inference_table([path], spec, 1)
    assert t.loc[0, "throughput_samples_per_s"] == 3200.0 and not t.loc[0, "energy_measured"]


def _sweep(tmp_path, losses):
    """Sweep run folders with the given {(family, lr, seed): final_val_loss}."""
    specs, paths = {}, []
    for (family, lr, seed), loss in losses.items():
        name = f"{family}-lr{lr!r}-s{seed}"
        specs[name] = dict(family=family, strategy="serial" if family == "dense" else "pp",
                           p=1 if family == "dense" else 2, n=64, k=0 if family == "dense" else 4,
                           lr=lr, seed=seed)
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(
            json.dumps({"final_val_loss": loss, "steps": 8}))
        paths.append(tmp_path / name / "summary.json")
    return specs, paths


def test_lr_sweep_chooses_the_lowest_mean_validation_loss_per_family(tmp_path):
    specs, paths = _sweep(tmp_path, {
        ("dense", 0.001, 0): 0.30, ("dense", 0.001, 1): 0.10,   # mean 0.20
        ("dense", 0.003, 0): 0.15, ("dense", 0.003, 1): 0.17,   # mean 0.16: chosen
        ("pp", 0.001, 0): 0.20, ("pp", 0.001, 1): 0.20,         # tie at 0.20: smaller lr
        ("pp", 0.003, 0): 0.25, ("pp", 0.003, 1): 0.15,
        ("pp", 0.01, 0): float("nan"), ("pp", 0.01, 1): 0.01,   # diverged seed: never chosen
    })
    df = lr_sweep.sweep_table(specs, paths)
    assert list(df.columns) == lr_sweep.COLUMNS and len(df) == 10
    assert df.loc[(df["family"] == "dense") & (df["lr"] == 0.001), "mean_val_loss"].iloc[0] == \
        pytest.approx(0.20)
    df.to_csv(tmp_path / "lr_sweep.csv", index=False)
    assert lr_sweep.chosen_lr(tmp_path / "lr_sweep.csv", "dense") == 0.003
    assert lr_sweep.chosen_lr(tmp_path / "lr_sweep.csv", "pp") == 0.001
    assert df["chosen"].sum() == 4  # every seed's row of the two chosen (family, lr)


def test_lr_sweep_cli_prints_the_choice_or_a_one_line_error(tmp_path, capsys):
    specs, paths = _sweep(tmp_path, {("dense", 0.0003, 0): 0.2, ("dense", 0.001, 0): 0.1})
    lr_sweep.sweep_table(specs, paths).to_csv(tmp_path / "t.csv", index=False)
    assert lr_sweep.main([str(tmp_path / "t.csv"), "dense"]) == 0
    assert float(capsys.readouterr().out) == 0.001
    assert lr_sweep.main([str(tmp_path / "t.csv"), "pp"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "0 chosen learning rates for family 'pp'" in err


def test_lr_sweep_inverse_width_scaling_transfers_the_choice_to_other_widths(tmp_path, capsys):
    specs, paths = _sweep(tmp_path, {("dense", 0.002, 0): 0.1, ("dense", 0.004, 0): 0.2})
    table = tmp_path / "t.csv"
    lr_sweep.sweep_table(specs, paths).to_csv(table, index=False)  # swept width n = 64
    assert lr_sweep.run_lr(table, "dense", 128, "inverse") == pytest.approx(0.001)
    assert lr_sweep.run_lr(table, "dense", 32, "inverse") == pytest.approx(0.004)
    assert lr_sweep.run_lr(table, "dense", 128, "none") == 0.002  # width ignored
    assert lr_sweep.main([str(table), "dense", "--width", "256", "--width-scaling", "inverse"]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(0.0005)
    assert lr_sweep.main([str(table), "dense", "--width-scaling", "inverse"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs --width" in err


def test_lr_sweep_with_every_run_diverged_is_refused(tmp_path):
    specs, paths = _sweep(tmp_path, {("pp", 0.1, 0): float("inf")})
    with pytest.raises(ValueError, match="family 'pp' diverged"):
        lr_sweep.sweep_table(specs, paths)
