"""Shared helpers of the figure notebooks: loading the study tables, provenance, saving.

Every figure states its scale, its hardware and whether its energy is measured or modelled
(:func:`provenance`), and :func:`save` refuses a figure with an axis label without a unit
(``[unit]``) or an empty axis, so no placeholder can be written.

The backend is left to the environment: in a Jupyter/papermill kernel it is the inline backend,
so every figure also shows in the executed notebook (image/png output); in a plain script
matplotlib picks a non-interactive one. PDFs embed their fonts as TrueType (Type 42), never as
Type 3 bitmaps, as IEEE/ACM submission checks require.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

STRATEGY_ORDER = ["serial", "tp", "dtensor", "pp"]
STRATEGY_LABEL = {"serial": "serial", "tp": "TP", "dtensor": "DTensor TP", "pp": "PP"}
PALETTE = {"serial": "#7f7f7f", "tp": "#1f77b4", "dtensor": "#17becf", "pp": "#d62728"}
LABEL_PALETTE = {STRATEGY_LABEL[k]: v for k, v in PALETTE.items()}
LABEL_MARKERS = {"serial": "s", "TP": "X", "DTensor TP": "P", "PP": "o"}
# fonts embedded as TrueType (Type 42) in PDF and PostScript output, never Type 3
FONT_RC = {"pdf.fonttype": 42, "ps.fonttype": 42}


def root() -> Path:
    """Repository root (the notebooks run from the root under Snakemake, or from notebooks/)."""
    here = Path.cwd()
    return here if (here / "Snakefile").exists() else here.parent


def setup() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", **FONT_RC})


def resolve(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root() / p


def load(table: str | Path) -> dict[str, pd.DataFrame]:
    """The study tables next to ``table`` (study.parquet): study, curves, cost_model."""
    table = resolve(table)
    if not table.exists():
        raise FileNotFoundError(
            f"{table} does not exist: run `snakemake --profile local aggregate` first"
        )
    study = pd.read_parquet(table)
    if study.empty:
        raise ValueError(f"{table} has no runs")
    study["label"] = study["strategy"].map(STRATEGY_LABEL)
    out = {"study": study}
    curves = table.parent / "curves.parquet"
    if curves.exists():
        c = pd.read_parquet(curves)
        c["label"] = c["strategy"].map(STRATEGY_LABEL)
        out["curves"] = c
    grid = table.parent / "costs" / "cost_model.csv"
    if grid.exists():
        g = pd.read_csv(grid)
        g["label"] = g["strategy"].map(STRATEGY_LABEL)
        out["cost_model"] = g
    return out


def energy_kind(study: pd.DataFrame) -> str:
    """'measured (counter)', 'modelled (model)' or a mix, from the runs' energy methods."""
    methods = sorted(set(study["energy_method"].dropna()))
    measured = study["energy_measured"].fillna(False).astype(bool)
    if measured.all():
        kind = "measured"
    elif not measured.any():
        kind = "modelled (no power sensor)"
    else:
        kind = "mixed measured/modelled"
    return f"{kind}, method {'/'.join(methods)}"


def provenance(study: pd.DataFrame, scale: str, energy: bool = True) -> str:
    """One line: scale, hardware and (if the figure shows energy) how energy was obtained."""
    kinds = sorted({h.split(" (")[0] for h in study["hardware"].dropna()}) or ["unknown"]
    backends = sorted(b for b in set(study["backend"].dropna()) if b)
    hw = "/".join(kinds) + (f" ({', '.join(backends)})" if backends else "")
    hw += f", up to {int(study['p'].max())} ranks on {int(study['hosts'].max())} host(s)"
    line = f"scale: {scale} | hardware: {hw}"
    if energy:
        line += f" | energy: {energy_kind(study)}"
    return line


def title(fig: plt.Figure, text: str, study: pd.DataFrame, scale: str, energy: bool) -> None:
    fig.suptitle(f"{text}\n{provenance(study, scale, energy)}", fontsize=10)


def _check_axes(fig: plt.Figure, name: str) -> None:
    for ax in fig.axes:
        if not ax.get_visible() or not ax.has_data():
            continue
        for which, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if "[" not in label or "]" not in label:
                raise ValueError(f"{name}: {which} axis label {label!r} has no [unit]")


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name``.pdf and .png after checking that every axis has data and a unit."""
    _check_axes(fig, name)
    if not any(ax.has_data() for ax in fig.axes):
        raise ValueError(f"{name}: the figure has no data")
    out = resolve(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    with plt.rc_context(FONT_RC):
        fig.savefig(paths[0])
        fig.savefig(paths[1], dpi=150)
    return paths


def save_table(df: pd.DataFrame, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """Write ``name``.csv and a LaTeX ``name``.tex (booktabs) of a non-empty table."""
    if df.empty:
        raise ValueError(f"{name}: the table is empty")
    out = resolve(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.csv", out / f"{name}.tex"]
    df.to_csv(paths[0], index=False)
    latex = df.to_latex(index=False, caption=caption, label=f"tab:{name}", float_format="%.4g")
    paths[1].write_text(latex)
    return paths


def seed_stats(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean, standard deviation and count of ``value`` over seeds for each ``keys`` group."""
    g = df.groupby(keys, dropna=False)[value]
    return g.agg(mean="mean", sd="std", seeds="count").reset_index()
