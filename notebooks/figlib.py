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
from matplotlib.lines import Line2D
from studystats import ci_errorbar, ci_method, summarise, t_interval

from phantom_parallel.constants import STRATEGIES, STRATEGY_LABELS

__all__ = ["ci_errorbar", "ci_method", "summarise", "t_interval"]

STRATEGY_ORDER = sorted(STRATEGIES, key=lambda s: s == "pp")  # PP last
STRATEGY_LABEL = STRATEGY_LABELS
PALETTE = {"serial": "#7f7f7f", "tp": "#1f77b4", "dtensor": "#17becf", "fsdp": "#2ca02c",
           "pp": "#d62728"}
LABEL_PALETTE = {STRATEGY_LABEL[k]: v for k, v in PALETTE.items()}
LABEL_MARKERS = {STRATEGY_LABEL[s]: marker for s, marker in
                 {"serial": "s", "tp": "X", "dtensor": "P", "fsdp": "D", "pp": "o"}.items()}
OVERSUBSCRIBED_LABEL = "oversubscribed (ranks x threads > cores): time/energy inflated"
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
    """The study tables next to ``table`` (study.parquet): study, curves, cost_model and the
    derived tables of ``tables/`` (same_loss, frontier, hardness, inference) by name."""
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
    for csv in sorted((table.parent / "tables").glob("*.csv")):
        # the derived tables (rules table_*); one being rewritten by a concurrent job is skipped:
        # a notebook's rule declares (and so waits for) the tables it reads
        try:
            t = pd.read_csv(csv)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if "strategy" in t:
            t["label"] = t["strategy"].map(STRATEGY_LABEL)
        out[csv.stem] = t
    grid = table.parent / "costs" / "cost_model.csv"
    if grid.exists():
        g = pd.read_csv(grid)
        g["label"] = g["strategy"].map(STRATEGY_LABEL)
        out["cost_model"] = g
    return out


def mark_oversubscribed(ax: plt.Axes, df: pd.DataFrame, x: str, y: str,
                        keys: tuple[str, ...] = ("strategy", "n", "k", "p")) -> int:
    """Ring the per-configuration mean of every oversubscribed configuration of ``df`` on ``ax``
    and add the legend entry; returns how many configurations were marked."""
    if "oversubscribed" not in df or not df["oversubscribed"].fillna(False).astype(bool).any():
        return 0
    over = df[df["oversubscribed"].fillna(False).astype(bool)]
    pts = over.groupby([k for k in keys if k in over], dropna=False)[[x, y]].mean()
    ax.scatter(pts[x], pts[y], s=260, facecolors="none", edgecolors="k", linewidths=1.2,
               zorder=5)
    handles, labels = ax.get_legend_handles_labels()
    ring = Line2D([], [], marker="o", ls="", markersize=12, markerfacecolor="none",
                  markeredgecolor="k", label=OVERSUBSCRIBED_LABEL)
    ax.legend(handles=[*handles, ring], labels=[*labels, OVERSUBSCRIBED_LABEL], fontsize=7)
    return len(pts)


def oversubscription_note(study: pd.DataFrame) -> str:
    """One line for titles: which configurations are oversubscribed and where cores came from."""
    if "oversubscribed" not in study:
        return ""
    over = study[study["oversubscribed"].fillna(False).astype(bool)]
    if over.empty:
        return "no run oversubscribed"
    ps = ", ".join(str(p) for p in sorted(over["p"].unique()))
    src = "; ".join(sorted(set(study["cores_source"].dropna())))
    return f"oversubscribed (ringed): p = {ps} on {int(study['cores'].max())} cores ({src})"


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


def title(fig: plt.Figure, text: str, study: pd.DataFrame, scale: str, energy: bool,
          times: bool = False) -> None:
    """Figure title + provenance line; ``times``: the figure shows times or energies, so it
    also says which points are oversubscribed."""
    line = provenance(study, scale, energy)
    if times or energy:
        line += f"\n{oversubscription_note(study)}"
    fig.suptitle(f"{text}\n{line}", fontsize=10)


def _check_axes(fig: plt.Figure, name: str) -> None:
    for ax in fig.axes:
        if not ax.get_visible() or not ax.has_data():
            continue
        for which, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if "[" not in label or "]" not in label:
                raise ValueError(f"{name}: {which} axis label {label!r} has no [unit]")


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name``.pdf and .png after checking that every axis has data and a unit. Returns
    the two paths as ``out_dir`` names them (relative ones are relative to the repository
    root), so an executed notebook shows no machine's absolute path."""
    _check_axes(fig, name)
    if not any(ax.has_data() for ax in fig.axes):
        raise ValueError(f"{name}: the figure has no data")
    out = resolve(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(FONT_RC):
        fig.savefig(out / f"{name}.pdf")
        fig.savefig(out / f"{name}.png", dpi=150)
    return [Path(out_dir) / f"{name}.pdf", Path(out_dir) / f"{name}.png"]


def save_table(df: pd.DataFrame, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """Write ``name``.csv and a LaTeX ``name``.tex (booktabs) of a non-empty table; returns
    their paths as :func:`save` does."""
    if df.empty:
        raise ValueError(f"{name}: the table is empty")
    out = resolve(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    latex = df.to_latex(index=False, caption=caption, label=f"tab:{name}", float_format="%.4g")
    (out / f"{name}.tex").write_text(latex)
    return [Path(out_dir) / f"{name}.csv", Path(out_dir) / f"{name}.tex"]


def seed_stats(df: pd.DataFrame, keys: list[str], value: str, level: float = 0.95) -> pd.DataFrame:
    """Mean and Student t interval (``level``) of ``value`` over seeds for each ``keys`` group."""
    out = summarise(df, keys, [value], level)
    out["ci_method"] = ci_method(level)
    return out
