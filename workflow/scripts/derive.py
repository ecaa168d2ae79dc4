"""Tables derived from the study's tidy tables, one per kind (rules ``table_<kind>``).

* ``same_loss``: for every judged run (same_loss.runs, plus serial and TP at the width and ranks
  of each PP run) and the reference configuration, the step, samples, measured step time,
  energy and device-hours at which its validation loss first reaches the target, interpolated
  linearly between the two evaluations that bracket the crossing (the same fraction for every
  quantity: linear in step, and so linear in time between evaluations). The target is the
  reference configuration's mean final validation loss over seeds x (1 + tolerance), or the
  config's absolute ``target_val_loss``.
* ``frontier``: every run of the scale (same number of samples), its parameters, final test
  (else validation) loss, energy and device-hours, and whether its configuration's means are on
  the Pareto front (lower loss and lower cost) for energy, device-hours and parameters.
* ``hardness``: per seed, the validation MSE of the full- and half-width student, the paired
  relative gap; its mean, Student t interval and the verdict.
* ``inference``: one row per phantom-infer JSON.
* ``lr_sweep``: one row per learning-rate sweep run and the chosen lr per family
  (``lr_sweep.py``).

Run by Snakemake (``script:``); every function also works on DataFrames for the tests.
"""


import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phantom_parallel.constants import STRATEGY_LABELS

# Snakemake runs a copy of this script from .snakemake/scripts: its scriptdir is the original's
_HERE = Path(globals()["snakemake"].scriptdir) if "snakemake" in globals() else Path(__file__).parent
sys.path.insert(0, str(_HERE.resolve().parents[1] / "notebooks"))
import studystats  # noqa: E402

sys.path.insert(0, str(_HERE.resolve()))
import lr_sweep  # noqa: E402

MEASURED_METHODS = ("counter", "integration")
INTERP_COLS = {
    "step": "step_at_target",
    "samples": "samples_at_target",
    "train_time_s": "time_at_target_s",
    "measured_time_s": "measured_time_at_target_s",
    "energy_j": "energy_j_at_target",
    "device_hours": "device_hours_at_target",
}
ENERGY_INTERPOLATION = (
    "energy to t: energy.json per_epoch_j at constant power within each epoch's wall-clock "
    "window, summed up to the evaluation; between the two evaluations that bracket the "
    "crossing linear in time (same fraction as the step)"
)


def config_label(strategy: str, p: int, n: int, k: int) -> str:
    return f"{STRATEGY_LABELS.get(strategy, strategy)} n={n}" + (f" k={k}" if strategy == "pp" else "") + f", p={p}"


def _cfg(row: Any) -> tuple[str, int, int, int]:
    return (str(row["strategy"]), int(row["p"]), int(row["n"]), int(row["k"]))


def crossing(curve: pd.DataFrame, target: float) -> dict[str, Any]:
    """Where one run's validation loss first reaches ``target`` (curve sorted by step).

    ``crossing``: ``interpolated`` (between evaluations i-1 and i, fraction
    f = (v[i-1] - target) / (v[i-1] - v[i])), ``at first evaluation`` (already below at the
    first evaluation: the values are upper bounds), or ``never``.
    """
    c = curve.sort_values("step").reset_index(drop=True)
    hit = np.flatnonzero(c["val_loss"].to_numpy() <= target)
    out: dict[str, Any] = {v: math.nan for v in INTERP_COLS.values()}
    if not len(hit):
        return {**out, "reached": False, "crossing": "never"}
    i = int(hit[0])
    if i == 0:
        for src, dst in INTERP_COLS.items():
            out[dst] = float(c.at[0, src])
        return {**out, "reached": True, "crossing": "at first evaluation (upper bound)"}
    v0, v1 = float(c.at[i - 1, "val_loss"]), float(c.at[i, "val_loss"])
    f = (v0 - target) / (v0 - v1) if v0 != v1 else 1.0
    for src, dst in INTERP_COLS.items():
        a, b = float(c.at[i - 1, src]), float(c.at[i, src])
        out[dst] = a + f * (b - a)
    return {**out, "reached": True, "crossing": "interpolated"}


def same_loss_target(study: pd.DataFrame, plan: dict[str, Any]) -> tuple[float, str]:
    """(target, how it was set) from the plan of runs.smk (same_loss_plan)."""
    if plan.get("target_val_loss") is not None:
        return float(plan["target_val_loss"]), "config same_loss.target_val_loss (absolute)"
    ref = tuple(plan["reference"])
    base = study[~study["ablation_arm"].astype(bool)]
    rows = base[[_cfg(r) == ref for _, r in base.iterrows()]]
    if rows.empty:
        raise SystemExit(f"derive: no runs of the reference configuration {ref}")
    mean = float(rows["final_val_loss"].mean())
    tol = float(plan.get("tolerance") or 0.0)
    source = (f"reference {config_label(*ref)}: mean final val loss {mean:.6g} over "
              f"{len(rows)} seeds x (1 + {tol:g})")
    return mean * (1 + tol), source


def same_loss_table(study: pd.DataFrame, curves: pd.DataFrame, plan: dict[str, Any]) -> pd.DataFrame:
    target, source = same_loss_target(study, plan)
    roles = {tuple(cfg): role for cfg, role in plan["judged"]}
    if plan.get("reference"):
        roles.setdefault(tuple(plan["reference"]), "reference (sets the target; not judged)")
    base = study[~study["ablation_arm"].astype(bool)]
    rows = []
    for _, r in base.iterrows():
        cfg = _cfg(r)
        if cfg not in roles:
            continue
        c = curves[curves["run"] == r["run"]]
        hit = crossing(c, target)
        rows.append({
            "config": config_label(*cfg),
            "role": roles[cfg],
            "strategy": cfg[0], "p": cfg[1], "n": cfg[2], "k": cfg[3],
            "seed": int(r["seed"]),
            "run": r["run"],
            "params": r["params_total"],
            **hit,
            "evaluations": len(c),
            "eval_source": "/".join(sorted(set(c["eval_source"]))) if len(c) else "",
            "final_val_loss": r["final_val_loss"],
            "energy_method": r["energy_method"],
            "energy_measured": r["energy_method"] in MEASURED_METHODS,
            "energy_interpolation": ENERGY_INTERPOLATION,
            "oversubscribed": bool(r["oversubscribed"]),
            "target_val_loss": target,
            "target_source": source,
        })
    df = pd.DataFrame(rows)
    order = ["config", "role", "strategy", "p", "n", "k", "seed", "run", "params", "reached",
             "crossing", "step_at_target", "samples_at_target", "time_at_target_s",
             "measured_time_at_target_s", "energy_j_at_target", "device_hours_at_target",
             "evaluations", "eval_source", "final_val_loss", "energy_method", "energy_measured",
             "energy_interpolation", "oversubscribed", "target_val_loss", "target_source"]
    return df[order].sort_values(["role", "strategy", "p", "n", "k", "seed"]).reset_index(drop=True)


FRONT_COSTS = {"energy_j": "on_front", "device_hours": "on_front_device_hours",
               "params": "on_front_params"}


def frontier_table(study: pd.DataFrame) -> pd.DataFrame:
    """Every run of the scale except init-ablation arms; Pareto front of configuration means."""
    base = study[~study["ablation_arm"].astype(bool)].copy()
    samples = base["samples"].dropna().unique()
    if len(samples) > 1:
        raise SystemExit(f"derive: frontier runs differ in samples {sorted(samples)}: not comparable")
    has_test = base["final_test_loss"].notna().all() and len(base)
    df = pd.DataFrame({
        "config": [config_label(*_cfg(r)) for _, r in base.iterrows()],
        "strategy": base["strategy"], "n": base["n"], "k": base["k"], "p": base["p"],
        "seed": base["seed"], "run": base["run"],
        "params": base["params_total"], "samples": base["samples"],
        "val_loss": base["final_val_loss"], "test_loss": base["final_test_loss"],
        "energy_j": base["energy_j"], "energy_method": base["energy_method"],
        "energy_measured": base["energy_method"].isin(MEASURED_METHODS),
        "device_hours": base["device_hours"],
        "oversubscribed": base["oversubscribed"].astype(bool),
        "in_quality_cost": base["in_quality_cost"].astype(bool),
    })
    loss = "test_loss" if has_test else "val_loss"
    df["front_loss"] = "test" if has_test else "validation (no test split)"
    means = df.groupby("config").agg(loss=(loss, "mean"), energy_j=("energy_j", "mean"),
                                     device_hours=("device_hours", "mean"),
                                     params=("params", "mean"))
    for cost, col in FRONT_COSTS.items():
        front = dict(zip(means.index, studystats.pareto_front(means[cost], means["loss"]), strict=True))
        df[col] = df["config"].map(front).astype(bool)
    return df.sort_values(["strategy", "p", "n", "k", "seed"]).reset_index(drop=True)


def hardness_table(study: pd.DataFrame, hard: dict[str, Any], level: float) -> pd.DataFrame:
    base = study[~study["ablation_arm"].astype(bool)]
    sel = base[(base["strategy"] == hard["strategy"]) & (base["p"] == hard["ranks"])]
    full = sel[sel["n"] == hard["width"]].set_index("seed")["final_val_loss"]
    half = sel[sel["n"] == hard["width"] // 2].set_index("seed")["final_val_loss"]
    seeds = sorted(set(full.index) & set(half.index))
    gaps = [half[s] / full[s] - 1 for s in seeds]
    mean, lo, hi, n = studystats.t_interval(gaps, level)
    margin = float(hard["margin"])
    passed = bool(n >= 2 and mean >= margin and lo > 0)
    verdict = (f"{'PASS' if passed else 'FAIL'}: half width is {mean:+.1%} worse "
               f"(CI {lo:+.1%} .. {hi:+.1%}); needs >= {margin:.0%} with the CI above 0")
    return pd.DataFrame([{
        "strategy": hard["strategy"], "p": hard["ranks"], "width_full": hard["width"],
        "width_half": hard["width"] // 2, "seed": s, "val_loss_full": float(full[s]),
        "val_loss_half": float(half[s]), "rel_gap": g, "seeds": n, "rel_gap_mean": mean,
        "rel_gap_ci_low": lo, "rel_gap_ci_high": hi,
        "ci_method": studystats.ci_method(level, paired=True), "margin": margin,
        "passed": passed, "verdict": verdict,
    } for s, g in zip(seeds, gaps, strict=True)])


def inference_table(paths: list[Path], specs: dict[str, dict[str, Any]], cpus_per_rank: int) -> pd.DataFrame:
    cores = os.cpu_count() or 1
    rows = []
    for path in paths:
        spec = specs[path.stem]
        rec = json.loads(Path(path).read_text())
        rows.append({
            "config": config_label(spec["strategy"], spec["p"], spec["n"], spec["k"]),
            "strategy": spec["strategy"], "p": spec["p"], "n": spec["n"], "k": spec["k"],
            "repeat": spec["repeat"],
            "batch": rec.get("batch"), "latency_s": rec.get("latency_s"),
            "throughput_samples_per_s": rec.get("throughput_samples_per_s"),
            "energy_j_per_sample": rec.get("energy_j_per_sample"),
            "energy_method": rec.get("energy_method", ""),
            "energy_measured": rec.get("energy_method", "") in MEASURED_METHODS,
            "cores": cores,
            "cores_source": "os.cpu_count() at aggregation",
            "oversubscribed": spec["p"] * cpus_per_rank > cores,
        })
    return pd.DataFrame(rows)


def main(smk: Any) -> None:
    kind = smk.params.kind
    out = Path(smk.output[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    level = float(smk.params.statistics.get("level", 0.95))
    res = Path(smk.input[0]).parent
    if kind == "same_loss":
        df = same_loss_table(pd.read_parquet(res / "study.parquet"),
                             pd.read_parquet(res / "curves.parquet"), smk.params.same_loss)
    elif kind == "frontier":
        df = frontier_table(pd.read_parquet(res / "study.parquet"))
    elif kind == "hardness":
        df = hardness_table(pd.read_parquet(res / "study.parquet"), smk.params.hardness, level)
    elif kind == "inference":
        df = inference_table([Path(p) for p in smk.input], smk.params.infer_runs,
                             smk.params.cpus_per_rank)
    elif kind == "lr_sweep":
        df = lr_sweep.sweep_table(smk.params.lr_sweep, [Path(p) for p in smk.input])
    else:
        raise SystemExit(f"derive: unknown table {kind!r}")
    df.to_csv(out, index=False)


if "snakemake" in globals():
    import traceback

    _smk = globals()["snakemake"]
    with open(_smk.log[0], "w") as _log:
        try:
            main(_smk)
        except BaseException:
            traceback.print_exc(file=_log)
            raise
