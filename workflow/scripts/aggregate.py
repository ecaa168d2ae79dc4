"""Collect the run folders of one scale into the study's tidy tables.

Reads, per run, the files of the run-folder contract (docs/interfaces.md): ``summary.json``,
``manifest.json``, ``epochs.csv``, ``events.jsonl`` and ``energy.json``, joins the cost-model
predictions of ``phantom-costs`` for the same configuration, and writes

* ``study.parquet``: one row per run,
* ``curves.parquet``: one row per run and epoch,
* ``data_dictionary.md``: every column of both tables with its unit,

checking that the columns match ``workflow/schemas/data_dictionary.yaml`` exactly. No number is
recomputed here that the trainer, the energy subsystem or the cost model already provide.

Run by Snakemake (rule ``aggregate``) or by hand::

    python workflow/scripts/aggregate.py --results results/smoke --scale smoke
"""


import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

MEASURED_METHODS = ("counter", "integration")
DTYPES = {"string": "string", "int": "Int64", "float": "float64", "bool": "boolean"}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def epoch_times(events: list[dict[str, Any]]) -> dict[int, float]:
    """Seconds of each epoch: its epoch_end minus the latest epoch_start or resume before it."""
    out: dict[int, float] = {}
    start: int | None = None
    for ev in sorted(events, key=lambda e: e["t_ns"]):
        kind = ev.get("event")
        if kind in ("epoch_start", "resume"):
            start = ev["t_ns"]
        elif kind == "epoch_end" and start is not None and ev.get("epoch") is not None:
            out[int(ev["epoch"])] = (ev["t_ns"] - start) / 1e9
            start = None
    return out


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
    """The columns that identify a run in every table: scale, run name, strategy, p, n, k, seed."""
    return {"scale": scale, **{key: spec[key] for key in ("run", "strategy", "p", "n", "k", "seed")}}


def run_row(spec: dict[str, Any], folder: Path, scale: str, training: dict[str, Any]) -> dict:
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
        "lr": training["lr"],
        "dtype": training["dtype"],
        "in_scaling": "scaling" in spec["experiments"],
        "in_same_loss": "same_loss" in spec["experiments"],
        "hardware": desc,
        "device": device,
        "backend": backend,
        "hosts": hosts,
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
        "energy_j": energy.get("total_j"),
        "energy_method": method,
        "energy_measured": method in MEASURED_METHODS,
        "energy_source": energy.get("source", ""),
        "mean_power_w": energy.get("mean_power_w"),
        "measured_time_s": window,
        "device_hours": spec["p"] * window / 3600 if window is not None else math.nan,
        "energy_per_step_j": energy.get("j_per_step"),
    }


def curve_rows(spec: dict[str, Any], folder: Path, scale: str) -> list[dict[str, Any]]:
    epochs = pd.read_csv(folder / "epochs.csv")
    times = epoch_times(read_events(folder / "events.jsonl"))
    per_epoch_j = read_json(folder / "energy.json").get("per_epoch_j", {}) or {}
    rows, t_cum, e_cum = [], 0.0, 0.0
    for rec in epochs.sort_values("epoch").to_dict("records"):
        ep = int(rec["epoch"])
        t_cum += times.get(ep, math.nan)
        e_cum += float(per_epoch_j.get(str(ep), math.nan))
        rows.append(
            {
                **run_keys(scale, spec),
                "epoch": ep,
                "step": int(rec["step"]),
                "train_loss": float(rec["train_loss"]),
                "val_loss": float(rec["val_loss"]),
                "time_s": t_cum,
                "energy_j": e_cum,
                "device_hours": spec["p"] * t_cum / 3600,
            }
        )
    return rows


def add_targets(study: pd.DataFrame, curves: pd.DataFrame, target: float | None) -> pd.DataFrame:
    """Experiment 5: epochs, time, energy and device-hours until val loss <= target."""
    sel = study["in_same_loss"]
    if target is None and sel.any():
        target = float(study.loc[sel, "final_val_loss"].max())
    cols = ["epochs_to_target", "time_to_target_s", "energy_to_target_j"]
    study["target_val_loss"] = target if target is not None else math.nan
    study.loc[~sel, "target_val_loss"] = math.nan
    for col in [*cols, "device_hours_to_target"]:
        study[col] = math.nan
    for idx in study.index[sel]:
        c = curves[curves["run"] == study.at[idx, "run"]].sort_values("epoch")
        hit = c[c["val_loss"] <= target]
        if len(hit):
            first = hit.iloc[0]
            study.loc[idx, cols] = [first["epoch"], first["time_s"], first["energy_j"]]
            study.at[idx, "device_hours_to_target"] = first["device_hours"]
    return study


def typed(df: pd.DataFrame, spec: dict[str, Any], name: str) -> pd.DataFrame:
    """Check the columns against the data dictionary and cast them to the documented types."""
    documented = list(spec["columns"])
    extra = sorted(set(df.columns) - set(documented))
    missing = sorted(set(documented) - set(df.columns))
    if extra or missing:
        raise SystemExit(
            f"aggregate: table {name!r} does not match workflow/schemas/data_dictionary.yaml: "
            f"undocumented columns {extra}, missing columns {missing}"
        )
    df = df[documented].copy()
    for col, meta in spec["columns"].items():
        if meta["type"] == "float":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        else:
            df[col] = df[col].astype(DTYPES[meta["type"]])
    return df


def dictionary_markdown(dictionary: dict[str, Any]) -> str:
    lines = ["# Data dictionary of the study tables", ""]
    lines.append("Generated by workflow/scripts/aggregate.py from workflow/schemas/data_dictionary.yaml.")
    for name, spec in dictionary.items():
        lines += ["", f"## {name}.parquet", "", spec["description"], ""]
        lines += ["| column | type | unit | description |", "|---|---|---|---|"]
        for col, meta in spec["columns"].items():
            lines.append(f"| `{col}` | {meta['type']} | {meta['unit']} | {meta['description']} |")
    return "\n".join(lines) + "\n"


def aggregate(
    runs: Iterable[dict[str, Any]],
    runs_root: Path,
    costs_csv: Path,
    dictionary_yaml: Path,
    scale: str,
    training: dict[str, Any],
    target: float | None,
    out_study: Path,
    out_curves: Path,
    out_dictionary: Path,
) -> None:
    runs = list(runs)
    dictionary = yaml.safe_load(dictionary_yaml.read_text())
    study = pd.DataFrame([run_row(r, runs_root / r["run"], scale, training) for r in runs])
    curves = pd.DataFrame([row for r in runs for row in curve_rows(r, runs_root / r["run"], scale)])
    pred = predictions(costs_csv)
    dt = pred[pred["strategy"] == "tp"].assign(strategy="dtensor")
    pred = pd.concat([pred, dt]).drop_duplicates(["strategy", "p", "n", "k"])
    study = study.merge(pred, on=["strategy", "p", "n", "k"], how="left", validate="many_to_one")
    study = add_targets(study, curves, target)
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
    args = ap.parse_args(argv)
    sc = yaml.safe_load(args.config.read_text())["scales"][args.scale]
    runs = []
    for folder in sorted((args.results / "runs").glob("*/summary.json")):
        strategy, p, n, k, seed = folder.parent.name.split("-")
        runs.append(
            {
                "run": folder.parent.name,
                "strategy": strategy,
                "p": int(p[1:]),
                "n": int(n[1:]),
                "k": int(k[1:]),
                "seed": int(seed[1:]),
                "experiments": _experiments(sc, strategy, int(p[1:]), int(n[1:])),
            }
        )
    aggregate(
        runs,
        args.results / "runs",
        args.results / "costs" / "runs.csv",
        args.dictionary,
        args.scale,
        sc["training"],
        sc["same_loss"]["target_val_loss"],
        args.results / "study.parquet",
        args.results / "curves.parquet",
        args.results / "data_dictionary.md",
    )


def _experiments(sc: dict[str, Any], strategy: str, p: int, n: int) -> list[str]:
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
        smk.params.same_loss["target_val_loss"],
        Path(smk.output.study),
        Path(smk.output.curves),
        Path(smk.output.dictionary),
    )


if "snakemake" in globals():
    _from_snakemake(globals()["snakemake"])
elif __name__ == "__main__":
    main()
