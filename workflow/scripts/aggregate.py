"""Collect the run folders of one scale into the study's tidy tables.

Reads, per run, the files of the run-folder contract (docs/interfaces.md): ``summary.json``,
``manifest.json``, ``epochs.csv``, ``events.jsonl`` and ``energy.json``, joins the cost-model
predictions of ``phantom-costs`` for the same configuration, and writes

* ``study.parquet``: one row per run,
* ``curves.parquet``: one row per run and validation evaluation (``evals.csv`` of a trainer with
  ``--eval-every``; else ``epochs.csv``, one evaluation per epoch), with the cumulative measured
  step time, wall time in the measured windows, energy and device-hours at each evaluation,
* ``data_dictionary.md``: every column of both tables with its unit,

checking that the columns match ``workflow/schemas/data_dictionary.yaml`` exactly. No number is
recomputed here that the trainer, the energy subsystem or the cost model already provide.

Run by Snakemake (rule ``aggregate``) or by hand::

    python workflow/scripts/aggregate.py --results results/smoke --scale smoke
"""


import argparse
import math
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

# Snakemake runs a copy of this script from .snakemake/scripts: its scriptdir is the original's
_HERE = Path(globals()["snakemake"].scriptdir) if "snakemake" in globals() else Path(__file__).parent
sys.path.insert(0, str(_HERE.resolve()))
from data_dictionary import dictionary_markdown, typed  # noqa: E402
from run_curves import curve_rows, read_json  # noqa: E402

MEASURED_METHODS = ("counter", "integration")
RUN_RE = re.compile(
    r"^(?P<strategy>[a-z]+)-p(?P<p>\d+)-n(?P<n>\d+)-k(?P<k>\d+)-s(?P<seed>\d+)"
    r"(?:-init(?P<init>[a-z-]+))?$"
)


def hardware(manifest: dict[str, Any]) -> tuple[str, str, str, int]:
    """(device kind + backend, device, backend, hosts) of one run from its manifest.json.

    Uses the device or CPU model when the manifest records one (``device_name`` /
    ``cpu_name``), else the device type and the ROCm/CUDA version of torch.
    """
    cfg = manifest.get("config", {})
    device = str(cfg.get("device", "cpu"))
    versions = manifest.get("versions", {}) or {}
    backend = versions.get("backend") or ""
    hosts = len(manifest.get("hosts", []) or [None])
    if device.startswith("cuda"):
        kind = f"ROCm {versions['hip']} GPU" if versions.get("hip") else "CUDA GPU"
        if manifest.get("device_name"):
            kind = str(manifest["device_name"])
    else:
        kind = f"CPU {manifest['cpu_name']}" if manifest.get("cpu_name") else "CPU"
    return kind + (f" ({backend})" if backend else ""), device, backend, hosts


def oversubscription(manifest: dict[str, Any], p: int, cpus_per_rank: int) -> dict[str, Any]:
    """Whether the run's ranks had more threads than cores on their busiest host.

    Ranks per host from the manifest (``ranks_per_host``, else p spread over ``hosts``), threads
    per rank from its config (``threads``, else execution.cpus_per_rank); cores from the
    manifest (``cpu_count``/``cores`` when a trainer records it) or, failing that,
    ``os.cpu_count()`` of the machine that aggregates (the same machine under the local
    profile; ``cores_source`` says which). On GPUs each rank has a device of its own: a run
    is oversubscribed there only if two ranks report the same device.
    """
    cfg = manifest.get("config", {}) or {}
    per_host = manifest.get("ranks_per_host") or {}
    hosts = max(len(manifest.get("hosts", []) or [None]), 1)
    ranks_host = max(per_host.values()) if per_host else math.ceil(p / hosts)
    threads = int(cfg.get("threads") or cpus_per_rank or 1)
    cores, source = None, ""
    for key in ("cpu_count", "cores", "cpus"):
        if manifest.get(key):
            cores, source = int(manifest[key]), f"manifest.json {key}"
            break
    if cores is None:
        cores = os.cpu_count() or 1
        source = "os.cpu_count() at aggregation (the manifest has no core count)"
    if str(cfg.get("device", "cpu")).startswith("cuda"):
        ids = [d.get("uuid") or d.get("pci_bus_id") or d.get("index")
               for d in manifest.get("rank_devices", []) or []]
        ids = [d for d in ids if d is not None]
        over = bool(ids) and len(set(ids)) < len(ids)
    else:
        over = ranks_host * threads > cores
    return {
        "ranks_per_host": ranks_host,
        "threads_per_rank": threads,
        "cores": cores,
        "cores_source": source,
        "oversubscribed": over,
    }


def predictions(costs_csv: Path) -> pd.DataFrame:
    """phantom-costs rows keyed by (strategy, p, n, k); dtensor is costed like tp."""
    c = pd.read_csv(costs_csv)
    c = c.rename(columns={"width": "n", "ghosts": "k"})
    keep = {
        "matmul_flops": "pred_matmul_flops",
        "payload_bytes": "pred_payload_bytes",
        "wire_bytes": "pred_wire_bytes",
        "comm_calls": "pred_comm_calls",
        "memory_bytes": "pred_memory_bytes",
        "params_total": "pred_params_total",
    }
    c = c[["strategy", "p", "n", "k", *keep]].rename(columns=keep)
    return c.drop_duplicates(["strategy", "p", "n", "k"])


def run_keys(scale: str, spec: dict) -> dict:
    """The columns that identify a run in every table: scale, run name, strategy, p, n, k,
    seed, and the PP initialisation passed to the trainer (empty: the trainer's default)."""
    keys = {"scale": scale, **{key: spec[key] for key in ("run", "strategy", "p", "n", "k", "seed")}}
    keys["pp_init"] = spec.get("init", "") or ""
    return keys


EXPERIMENTS = ("scaling", "same_loss", "same_loss_reference", "quality_cost", "hardness",
               "init_ablation")


def run_row(spec: dict[str, Any], folder: Path, scale: str, training: dict[str, Any],
            cpus_per_rank: int = 1) -> dict:
    summary = read_json(folder / "summary.json")
    manifest = read_json(folder / "manifest.json")
    energy = read_json(folder / "energy.json")
    desc, device, backend, hosts = hardware(manifest)
    step_time = summary.get("mean_step_time_s")
    window = energy.get("window_s")
    method = energy.get("method", "")
    steps = summary.get("steps")
    return {
        **run_keys(scale, spec),
        "layers": training["layers"],
        "batch_size": training["batch_size"],
        "epochs": training["epochs"],
        "optimizer": training["optimizer"],
        "lr": manifest.get("config", {}).get("lr", training["lr"]),  # lr_sweep: chosen lr
        "dtype": training["dtype"],
        **{f"in_{e}": e in spec["experiments"] for e in EXPERIMENTS},
        "ablation_arm": bool(spec.get("ablation_arm", False)),
        "hardware": desc,
        "device": device,
        "backend": backend,
        "hosts": hosts,
        **oversubscription(manifest, spec["p"], cpus_per_rank),
        "resumes": len(manifest.get("resumes", [])),
        "steps": steps,
        "samples": summary.get("samples"),
        "epochs_completed": summary.get("epochs_completed"),
        "wall_time_s": summary.get("wall_time_s"),
        "mean_step_time_s": step_time,
        "mean_compute_time_s": summary.get("mean_compute_time_s"),
        "mean_comm_time_s": summary.get("mean_comm_time_s"),
        "throughput_samples_per_s": (
            training["batch_size"] / step_time if step_time else math.nan
        ),
        "matmul_flops_per_step": summary.get("matmul_flops_per_step"),
        "comm_bytes_per_step": summary.get("comm_bytes_per_step"),
        "comm_calls_per_step": summary.get("comm_calls_per_step"),
        "peak_memory_bytes": summary.get("peak_memory_bytes"),
        "params_total": summary.get("params_total"),
        "params_per_rank": summary.get("params_per_rank"),
        "final_train_loss": summary.get("final_train_loss"),
        "final_val_loss": summary.get("final_val_loss"),
        "final_test_loss": summary.get("final_test_loss"),
        "energy_j": energy.get("total_j"),
        "energy_method": method,
        "energy_measured": method in MEASURED_METHODS,
        "energy_source": energy.get("source", ""),
        "mean_power_w": energy.get("mean_power_w"),
        "measured_time_s": window,
        "device_hours": spec["p"] * window / 3600 if window is not None else math.nan,
        "energy_per_step_j": energy.get("j_per_step"),
    }


def aggregate(
    runs: Iterable[dict[str, Any]],
    runs_root: Path,
    costs_csv: Path,
    dictionary_yaml: Path,
    scale: str,
    training: dict[str, Any],
    cpus_per_rank: int,
    out_study: Path,
    out_curves: Path,
    out_dictionary: Path,
) -> None:
    runs = list(runs)
    dictionary = yaml.safe_load(dictionary_yaml.read_text())
    study = pd.DataFrame([run_row(r, runs_root / r["run"], scale, training, cpus_per_rank)
                          for r in runs])
    bs = int(training["batch_size"])
    curves = pd.DataFrame([row for r in runs for row in curve_rows(run_keys(scale, r), r["p"], runs_root / r["run"], bs)])
    curves = curves.merge(study[["run", "oversubscribed"]], on="run", how="left")
    pred = predictions(costs_csv)
    dt = pred[pred["strategy"] == "tp"].assign(strategy="dtensor")
    pred = pd.concat([pred, dt]).drop_duplicates(["strategy", "p", "n", "k"])
    study = study.merge(pred, on=["strategy", "p", "n", "k"], how="left", validate="many_to_one")
    out_study.parent.mkdir(parents=True, exist_ok=True)
    typed(study, dictionary["study"], "study").to_parquet(out_study, index=False)
    typed(curves, dictionary["curves"], "curves").to_parquet(out_curves, index=False)
    out_dictionary.write_text(dictionary_markdown(dictionary))


def main(argv: list[str] | None = None) -> None:
    """Command-line use (outside Snakemake): re-aggregate an existing results/<scale> folder."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, required=True, help="results/<scale>")
    ap.add_argument("--scale", required=True)
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument("--dictionary", type=Path, default=Path("workflow/schemas/data_dictionary.yaml"))
    ap.add_argument("--cpus-per-rank", type=int, default=1, help="execution.cpus_per_rank")
    args = ap.parse_args(argv)
    sc = yaml.safe_load(args.config.read_text())["scales"][args.scale]
    runs = []
    for folder in sorted((args.results / "runs").glob("*/summary.json")):
        m = RUN_RE.match(folder.parent.name)
        if not m:
            continue
        strategy, p, n = m["strategy"], int(m["p"]), int(m["n"])
        runs.append(
            {
                "run": folder.parent.name,
                "strategy": strategy,
                "p": p,
                "n": n,
                "k": int(m["k"]),
                "seed": int(m["seed"]),
                "init": m["init"] or "",
                "ablation_arm": bool(m["init"]),
                "experiments": _experiments(sc, strategy, p, n),
            }
        )
    aggregate(
        runs,
        args.results / "runs",
        args.results / "costs" / "runs.csv",
        args.dictionary,
        args.scale,
        sc["training"],
        args.cpus_per_rank,
        args.results / "study.parquet",
        args.results / "curves.parquet",
        args.results / "data_dictionary.md",
    )


def _experiments(sc: dict[str, Any], strategy: str, p: int, n: int) -> list[str]:
    """By hand only (Snakemake passes the run table of runs.smk): scaling and same_loss
    membership from the config; the other blocks are left to the workflow."""
    out = []
    g = sc["scaling"]
    if n in g["widths"] and (strategy == "serial" or (strategy in g["strategies"] and p in g["ranks"])):
        out.append("scaling")
    if any(r["strategy"] == strategy and r["ranks"] == p and r["width"] == n for r in sc["same_loss"]["runs"]):
        out.append("same_loss")
    return out


def _from_snakemake(smk: Any) -> None:
    import traceback

    with open(smk.log[0], "w") as log:
        try:
            _aggregate_smk(smk)
        except BaseException:
            traceback.print_exc(file=log)
            raise


def _aggregate_smk(smk: Any) -> None:
    aggregate(
        smk.params.runs,
        Path(smk.input.summaries[0]).parent.parent,
        Path(smk.input.costs),
        Path(smk.input.dictionary),
        smk.params.scale,
        smk.params.training,
        smk.params.cpus_per_rank,
        Path(smk.output.study),
        Path(smk.output.curves),
        Path(smk.output.dictionary),
    )


if "snakemake" in globals():
    _from_snakemake(globals()["snakemake"])
elif __name__ == "__main__":
    main()
