"""Text report and strict-JSON encoding of one ``phantom-bench`` result (times in ms in the
text, seconds in the JSON)."""

from __future__ import annotations

import math
from typing import Any

from phantom_parallel.bench_steps import BENCH_STRATEGIES

# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.3f}"


def format_report(res: dict[str, Any]) -> str:
    """Human-readable tables of a result dict of :func:`run`."""
    c, e, cal = res["config"], res["env"], res["calibration"]
    k, k0, err = cal["constants"], cal["profile_values"], cal["fit_rel_err"]
    lines = []
    load = e["loadavg_before"]
    shared = load[0] > 1.0  # before the ranks started: other jobs (or a previous run's ranks)
    lines += [
        f"phantom-bench  p={c['world_size']} {e['backend']} {e['device']} {c['dtype']}  "
        f"n={c['width']} m={c['m']} L={c['layers']} k={c['ghosts']} B={c['batch']} "
        f"d_in={c['d_in']} d_out={c['d_out']} act={c['activation']} Adam",
        f"host {e['host']}  torch {e['torch']}  python {e['python']}  cpus {e['cpu_count']}  "
        f"threads/rank {e['threads_per_rank']}  {e['date']}",
        f"loadavg (1/5/15 min) before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after "
        + " ".join(f"{v:.2f}" for v in e["loadavg_after"])
        + ("  -> load > 1 before the run: other jobs (or the previous run) on the machine"
           if shared else ""),
        f"{c['steps']} timed steps per strategy in {c['rounds']} interleaved rounds "
        f"({' -> '.join(BENCH_STRATEGIES)}), {c['warmup']} warm-up steps each",
        "",
        f"time model: timing.step_time on profile {cal['profile']} (mode {cal['mode']}), "
        "constants fitted to this run's microbenchmarks (not the step times):",
        f"  {'constant':28} {'profile':>11} {'fitted':>11}",
        *(f"  {key:28} {k0[key]:>11.4g} {k[key]:>11.4g}" for key in k),
        "  fit rel. error (median / max): " + ", ".join(
            f"{g} {100 * v['median']:.0f}% / {100 * v['max']:.0f}%" for g, v in err.items() if v),
        f"  matmul rate {cal['matmul_flop_rate'] / 1e9:.2f} GFLOP/s (per-rank GEMMs, rank 0 "
        f"alone; all ranks at once {cal['flop_rate_concurrent'] / 1e9:.2f} GFLOP/s per rank); "
        f"collectives each after {cal['in_step_burst_gemms']} GEMMs on all ranks",
        "",
        "measured per step (ms; step = max over ranks, median [IQR]; comm from the ledger):",
        f"  {'strategy':9} {'step':>9} {'IQR':>8} {'comm':>8} {'compute':>8} {'fwd':>8} "
        f"{'bwd':>8} {'opt':>8} {'MFLOP':>8} {'GFLOP/s':>8} {'of rate':>8}",
    ]
    for s, d in res["strategies"].items():
        lines.append(
            f"  {s:9} {_ms(d['step']['median_s']):>9} {_ms(d['step']['iqr_s']):>8} "
            f"{_ms(d['comm'] and d['comm']['median_s']):>8} "
            f"{_ms(d['compute'] and d['compute']['median_s']):>8} "
            f"{_ms(d['fwd']['median_s']):>8} {_ms(d['bwd']['median_s']):>8} "
            f"{_ms(d['opt']['median_s']):>8} {d['matmul_flops'] / 1e6:>8.1f} "
            f"{d['achieved_flop_rate'] / 1e9:>8.2f} {100 * d['achieved_fraction']:>7.1f}%"
            + ("  (rate on step time)" if d["comm"] is None else "")
        )
    lines += [
        "",
        "time model (timing.step_time, no overlap; ms; compute = everything but comm):",
        f"  {'strategy':9} {'model':9} {'comm':>8} {'compute':>8} {'gemm':>8} {'elemw':>8} "
        f"{'optim':>8} {'total':>8} {'measured':>9} {'meas/pred':>10}",
    ]
    rows = [(s, "micro", res["strategies"][s]["prediction"]) for s in ("pp", "tp")]
    rows.append(("pp", "TP-calib.", res["strategies"]["pp"]["prediction_tp_calibrated"]))
    for s, label, pr in rows:
        lines.append(
            f"  {s:9} {label:9} {_ms(pr['comm_s']):>8} {_ms(pr['compute_s']):>8} "
            f"{_ms(pr['gemm_s']):>8} {_ms(pr['elementwise_s']):>8} {_ms(pr['optimizer_s']):>8} "
            f"{_ms(pr['total_s']):>8} {_ms(res['strategies'][s]['step']['median_s']):>9} "
            f"{pr['measured_over_predicted']:>6.3f} ± {pr['measured_over_predicted_se']:.3f}")
    lines.append(
        "  param tensors per rank: " + ", ".join(
            f"{s} {res['strategies'][s]['param_tensors_per_rank']}" for s in ("pp", "tp"))
        + "; GEMMs per step: " + ", ".join(
            f"{s} {res['strategies'][s]['matmul_calls']}" for s in ("pp", "tp")))
    ra, ch = res["ratios"], res["checks"]
    pp_c, tp_c = ch["pp_within_15pct_of_model"], ch["tp_no_slower_than_dtensor"]
    pp_m = ch["pp_within_15pct_of_microbenchmark_model"]
    pp_cal = res["strategies"]["pp"]["prediction_tp_calibrated"]
    lines += [
        "  TP-calib.: the microbenchmark profile re-fitted on this run's TP steps ("
        + ", ".join(f"{key} x{v:.2f}" for key, v in pp_cal["scales"].items())
        + "); PP's steps not used",
        "",
        "ratios of median step times (± standard error from the IQRs):",
        f"  PP/TP       = {ra['pp_over_tp']:.3f} ± {ra['pp_over_tp_se']:.3f}",
        f"  TP/DTensor  = {ra['tp_over_dtensor']:.3f} ± {ra['tp_over_dtensor_se']:.3f}",
        "",
        "targets:",
        f"  PP measured/predicted = {pp_c['ratio']:.3f} ± {pp_c['se']:.3f}  (model calibrated on "
        f"the measured TP steps, PP out of sample) (target within 15%)  {pp_c['verdict']}"
        + (f"\n    reason: {pp_c['reason']}" if pp_c["reason"] else ""),
        f"  TP/DTensor            = {tp_c['ratio']:.3f} ± {tp_c['se']:.3f}  "
        f"(target <= 1.0)       {tp_c['verdict']}"
        + (f"\n    note: {tp_c['reason']}" if tp_c["reason"] else ""),
        "diagnostic (not a target):",
        f"  PP measured/predicted = {pp_m['ratio']:.3f} ± {pp_m['se']:.3f}  (microbenchmark "
        f"constants only; the in-situ cost they miss)  {pp_m['verdict']}"
        + (f"\n    where: {pp_m['reason']}" if pp_m["reason"] else ""),
    ]
    for s, table in (res.get("profiles") or {}).items():
        if table:
            lines += ["", f"torch.profiler, {s.upper()} steps on rank 0 (sorted by self CPU time; "
                      "a collective's wait shows as self time of its autograd Function):", table]
    return "\n".join(lines) + "\n"


def jsonable(obj: Any) -> Any:
    """``obj`` with non-finite floats as strings ("nan", "inf") so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {key: jsonable(v) for key, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj
