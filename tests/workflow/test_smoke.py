"""The `smoke` scale end to end with the local profile (what CI runs): every figure and table,
clean executed notebooks, figure data traceable to the run folders, the HTML report."""

import base64
import csv
import json
import math
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from .helpers import REPO, dry_run_jobs, snakemake
from .test_figlib import pdf_fonts_are_truetype


def _smoke_notebooks() -> list[str]:
    """The notebooks the smoke scale runs: 01-08 always, 09-11 when their block is enabled."""
    import yaml

    smoke = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["scales"]["smoke"]
    books = sorted(b.stem for b in (REPO / "notebooks").glob("*.ipynb"))
    optional = {"09_hardness": "hardness", "10_inference": "inference",
                "11_init_ablation": "init_ablation"}
    return [b for b in books if b not in optional
            or (smoke.get(optional[b]) or {}).get("enabled", False)]



SMOKE_NOTEBOOKS = _smoke_notebooks()

pytestmark = pytest.mark.slow

SMOKE = ["--profile", "local", "--config", "scale=smoke"]


@pytest.fixture(scope="module")
def smoke() -> Path:
    """Run (or bring up to date) the smoke scale in the repository, as `.ci/run` does."""
    res = snakemake(SMOKE, REPO, timeout=1500)
    assert res.returncode == 0, res.stdout[-6000:]
    return REPO / "results" / "smoke"


@pytest.fixture(scope="module")
def summary(smoke) -> list[dict[str, str]]:
    """Snakemake's own list of every output of the smoke DAG and its state."""
    res = snakemake([*SMOKE, "--summary"], REPO, timeout=300)
    assert res.returncode == 0, res.stdout
    lines = [line for line in res.stdout.splitlines() if "\t" in line]
    return list(csv.DictReader(lines, delimiter="\t"))


def test_every_output_exists_and_is_up_to_date(summary):
    assert summary, "empty --summary"
    for row in summary:
        assert Path(REPO / row["output_file"]).exists(), row["output_file"]
        assert row["status"] == "ok", row


def test_every_figure_and_table_file(smoke, summary):
    figs = [r["output_file"] for r in summary if r["output_file"].startswith("figures/smoke/")]
    names = {Path(f).name for f in figs}
    for i, stem in enumerate(
        ["cost_model", "predicted_vs_measured", "strong_scaling", "energy", "same_loss", "projection"],
        start=1,
    ):
        assert f"fig{i}_{stem}.pdf" in names and f"fig{i}_{stem}.png" in names
    assert "fig8_quality_cost.pdf" in names and "fig8_quality_cost.png" in names
    for table in ["table1_configurations", "table2_summary", "energy_reduction", "same_loss_summary",
                  "calibration", "frontier_summary"]:
        assert f"{table}.csv" in names and f"{table}.tex" in names
    for f in figs:
        path = REPO / f
        assert path.stat().st_size > (2000 if f.endswith((".png", ".pdf")) else 100), f
        if f.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if f.endswith(".pdf"):
            assert path.read_bytes()[:5] == b"%PDF-"


def test_executed_notebooks_have_no_errors(smoke):
    books = sorted((smoke / "notebooks").glob("*.ipynb"))
    assert [b.name for b in books] == [f"{n}.ipynb" for n in SMOKE_NOTEBOOKS]
    for book in books:
        nb = nbformat.read(book, as_version=4)
        assert not nb.metadata["papermill"].get("exception"), book
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", (book, cell.source[:200])
                if out["output_type"] == "stream" and out["name"] == "stderr":
                    assert "Traceback" not in out["text"], (book, out["text"])
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert ["parameters"] in tags and ["injected-parameters"] in tags
        assert (book.with_suffix(".html")).exists()


def test_executed_notebooks_show_every_figure_and_table_inline(smoke):
    """Each figlib.save(...) call of a notebook shows its figure as an image/png output, each
    table cell an HTML table; the HTML export embeds the images (readable offline)."""
    for book in sorted((smoke / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(book, as_version=4)
        saves = sum(c.source.count("figlib.save(") for c in nb.cells if c.cell_type == "code")
        tables = sum(c.source.count("figlib.save_table(") for c in nb.cells if c.cell_type == "code")
        mimes = [m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})]
        assert mimes.count("image/png") >= saves, (book, mimes)
        assert mimes.count("text/html") >= tables, (book, mimes)
        pngs = [base64.b64decode(o["data"]["image/png"]) for c in nb.cells
                for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert all(p[:8] == b"\x89PNG\r\n\x1a\n" and len(p) > 5000 for p in pngs), book
        html = book.with_suffix(".html").read_text()
        assert html.count("data:image/png;base64,") >= saves, book
        srcs = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", html)
        assert all(src.startswith("data:") for src in srcs), (book, srcs)
        assert not re.search(r"<link[^>]*stylesheet[^>]*href=\"(?!data:)", html), book
    figure_books = [b for b in (smoke / "notebooks").glob("*.ipynb") if "figlib.save(" in b.read_text()]
    assert len(figure_books) == len(SMOKE_NOTEBOOKS) - 1  # 07_tables writes tables only


def test_pdf_figures_embed_truetype_fonts(smoke):
    pdfs = sorted((REPO / "figures" / "smoke").glob("*.pdf"))
    assert len(pdfs) == len(SMOKE_NOTEBOOKS) - 1  # one figure per notebook but 07_tables
    for pdf in pdfs:
        assert pdf_fonts_are_truetype(pdf.read_bytes()), pdf


def _jobs_from_metadata(prefix: str) -> list[tuple[str, float, float, str]]:
    """(rule, start, end, first output) of every job that wrote a file under ``prefix``, from
    Snakemake's own records (.snakemake/metadata: start = the job's incomplete marker, end =
    the output's modification time)."""
    jobs: dict[tuple, list] = {}
    root = REPO / ".snakemake" / "metadata"
    for rec_path in root.rglob("*"):
        if not rec_path.is_file():
            continue
        # the output's path, base64 (long ones split into folders named @<part>)
        b64 = "".join(part.removeprefix("@") for part in rec_path.relative_to(root).parts)
        try:
            name = base64.urlsafe_b64decode(b64).decode()
        except ValueError:
            continue
        if not name.startswith(prefix):
            continue
        rec = json.loads(rec_path.read_text())
        key = (rec["rule"], rec["job_hash"], rec["shellcmd"])
        job = jobs.setdefault(key, [rec["rule"], rec["starttime"], rec["endtime"], name])
        job[1], job[2] = min(job[1], rec["starttime"]), max(job[2], rec["endtime"])
    return [tuple(j) for j in jobs.values()]


def test_measured_jobs_never_overlap_other_jobs(smoke):
    """The smoke run's training jobs (their time and energy are reported) each ran alone:
    no other job of the run started before a training job ended and ended after it started."""
    jobs = _jobs_from_metadata("results/smoke/")
    trains = [j for j in jobs if j[0] == "train"]
    assert len(trains) == len(_run_folders(smoke)), "a training job without metadata"
    for t in trains:
        for other in jobs:
            if other is t:
                continue
            assert not (other[1] < t[2] and t[1] < other[2]), (
                f"{other[0]} ({other[3]}) overlapped training job {t[3]}; results from a run "
                "before the `measure` resource? rerun: rm -r results/smoke && snakemake "
                "--profile local --config scale=smoke")


def _run_folders(smoke: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in (smoke / "runs").glob("*/summary.json")}


def test_study_table_comes_from_the_run_folders(smoke):
    study = pd.read_parquet(smoke / "study.parquet")
    folders = _run_folders(smoke)
    assert set(study["run"]) == set(folders)
    for row in study.itertuples():
        summary = json.loads((folders[row.run] / "summary.json").read_text())
        energy = json.loads((folders[row.run] / "energy.json").read_text())
        assert row.final_val_loss == summary["final_val_loss"]
        assert row.steps == summary["steps"]
        assert row.energy_j == energy["total_j"]
        assert row.energy_method == energy["method"]
        flops = summary.get("matmul_flops_per_step")
        assert (flops is None and math.isnan(row.matmul_flops_per_step)) or row.matmul_flops_per_step == flops
    dictionary = (smoke / "data_dictionary.md").read_text()
    for col in study.columns:
        assert f"| `{col}` |" in dictionary, col


def test_figure_tables_match_the_runs(smoke):
    """Table 2 (per-configuration means) recomputed from the raw energy.json / summary.json."""
    folders = _run_folders(smoke)
    raw = {}
    for run, folder in folders.items():
        strategy, p, n, k, _ = run.split("-")
        key = (strategy, int(p[1:]), int(n[1:]), int(k[1:]))
        energy = json.loads((folder / "energy.json").read_text())["total_j"]
        loss = json.loads((folder / "summary.json").read_text())["final_val_loss"]
        raw.setdefault(key, []).append((energy, loss))
    t2 = pd.read_csv(REPO / "figures" / "smoke" / "table2_summary.csv")
    assert len(t2) == len(raw)
    for row in t2.itertuples():
        vals = raw[(row.strategy, row.p, row.n, row.k)]
        assert row.seeds == len(vals)
        assert math.isclose(row.energy_j_mean, sum(e for e, _ in vals) / len(vals), rel_tol=1e-9)
        assert math.isclose(row.final_val_loss_mean, sum(v for _, v in vals) / len(vals), rel_tol=1e-9)
        assert row.energy_j_ci_low <= row.energy_j_mean <= row.energy_j_ci_high
        assert "Student t 95 %" in row.ci_method
    # the executed notebook of experiment 2 lists the runs it plotted
    nb = (smoke / "notebooks" / "02_predicted_vs_measured.ipynb").read_text()
    for run in folders:
        if not run.startswith(("serial", "dtensor")):
            assert run in nb, run


def test_figures_state_scale_hardware_and_energy_method(smoke):
    for book in sorted((smoke / "notebooks").glob("*.ipynb")):
        text = book.read_text()
        assert "figlib.title(" in text or "save_table" in text, book
    t = (REPO / "figures" / "smoke" / "energy_reduction.csv").read_text()
    assert "modelled" in t or "measured" in t


def test_html_report(smoke, tmp_path):
    report = tmp_path / "report.html"
    res = snakemake([*SMOKE, "--report", str(report)], REPO, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:]
    html = report.read_text(errors="replace")
    for stem in ["fig1_cost_model", "fig4_energy", "fig6_projection", "table2_summary"]:
        assert stem in html, stem
    # the executed notebooks (HTML, figures embedded) are part of the report
    for book in sorted((REPO / "results" / "smoke" / "notebooks").glob("*.ipynb")):
        assert f"{book.stem}.html" in html, book.stem
    assert "Executed notebook of rule" in html


def test_reference_rule_copies_notebooks_figures_and_tables(smoke):
    """`snakemake ... reference` would copy the executed notebooks (+ HTML), PNG figures, CSV
    tables and the data dictionary into docs/reference-<scale>/ (dry run: the repository's
    docs/ stay untouched)."""
    res = snakemake([*SMOKE, "--dry-run", "--printshellcmds", "reference"], REPO, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:]
    jobs = {j["output"]: j for j in dry_run_jobs(res.stdout) if j["rule"] == "reference_copy"}
    expected = {f"docs/reference-smoke/notebooks/{b.stem}.{ext}"
                for b in (smoke / "notebooks").glob("*.ipynb") for ext in ("ipynb", "html")}
    expected |= {f"docs/reference-smoke/tables/{t.name}" for t in (smoke / "tables").glob("*.csv")}
    expected |= {f"docs/reference-smoke/{f.name}" for f in (REPO / "figures" / "smoke").glob("*.png")}
    expected |= {f"docs/reference-smoke/{f.name}" for f in (REPO / "figures" / "smoke").glob("*.csv")}
    expected.add("docs/reference-smoke/data_dictionary.md")
    assert set(jobs) == expected
    html = jobs["docs/reference-smoke/notebooks/04_energy.html"]
    assert html["shell"].startswith("cp results/smoke/notebooks/04_energy.html ")
    assert not (REPO / "docs" / "reference-smoke").exists()


def test_same_loss_table_is_traceable_to_the_curves(smoke):
    """same_loss.csv: every judged configuration (PP, its serial and TP comparators) and the
    reference; the target is the reference's mean final val loss x 1.02; a reached crossing
    lies between two evaluations of the run's curve."""
    sl = pd.read_csv(smoke / "tables" / "same_loss.csv")
    study = pd.read_parquet(smoke / "study.parquet")
    curves = pd.read_parquet(smoke / "curves.parquet")
    for col in ("config", "strategy", "p", "n", "k", "seed", "reached", "step_at_target",
                "energy_j_at_target", "device_hours_at_target", "energy_method",
                "target_val_loss", "target_source"):
        assert col in sl, col
    cfgs = {(r.strategy, r.p, r.n, r.k) for r in sl.itertuples()}
    assert {("pp", 2, 128, 8), ("serial", 1, 128, 0), ("tp", 2, 128, 0), ("tp", 2, 256, 0)} <= cfgs
    ref = study[(study["strategy"] == "tp") & (study["n"] == 256) & (study["p"] == 2)]
    assert sl["target_val_loss"].iloc[0] == pytest.approx(ref["final_val_loss"].mean() * 1.02)
    assert "reference TP n=256, p=2" in sl["target_source"].iloc[0]
    for r in sl[sl["reached"] & (sl["crossing"] == "interpolated")].itertuples():
        c = curves[curves["run"] == r.run].sort_values("step")
        assert c["step"].min() <= r.step_at_target <= c["step"].max()
        assert c["energy_j"].min() <= r.energy_j_at_target <= c["energy_j"].max()
    for r in sl[~sl["reached"]].itertuples():
        assert curves[curves["run"] == r.run]["val_loss"].min() > r.target_val_loss


def test_frontier_table(smoke):
    fr = pd.read_csv(smoke / "tables" / "frontier.csv")
    for col in ("strategy", "n", "k", "p", "seed", "params", "val_loss", "test_loss", "energy_j",
                "energy_method", "device_hours", "on_front", "oversubscribed"):
        assert col in fr, col
    assert fr["samples"].nunique() == 1
    assert fr["on_front"].any()
    assert {("pp", 8), ("pp", 32)} <= {(r.strategy, r.k) for r in fr.itertuples()}


def test_lr_sweep_choice_flows_into_every_run(smoke):
    """lr_sweep.csv comes from the sweep runs' summaries, its choice is the lowest mean
    validation loss per family, and every study run trained with its family's choice."""
    import sys

    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    import lr_sweep

    table = pd.read_csv(smoke / "tables" / "lr_sweep.csv")
    assert list(table.columns) == lr_sweep.COLUMNS
    for r in table.itertuples():
        summary = json.loads((smoke / "lr_sweep" / r.run / "summary.json").read_text())
        assert r.val_loss == summary["final_val_loss"] and r.steps == summary["steps"]
    chosen = {}
    for family, g in table.groupby("family"):
        means = g.groupby("lr")["val_loss"].mean()
        assert g.loc[g["chosen"], "lr"].unique().tolist() == [means.idxmin()]
        chosen[family] = lr_sweep.chosen_lr(smoke / "tables" / "lr_sweep.csv", family)
    study = pd.read_parquet(smoke / "study.parquet")
    for row in study.itertuples():
        family = "pp" if row.strategy == "pp" else "dense"
        config = json.loads((smoke / "runs" / row.run / "manifest.json").read_text())["config"]
        assert row.lr == config["lr"] == chosen[family], row.run
