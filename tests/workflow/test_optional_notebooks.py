"""The figure notebooks of blocks that are off at smoke scale (09 hardness, 10 inference, 11 PP
init ablation) executed on tables derived from the smoke run, relabelled: they must run clean,
save their figure and table, and show them inline. (They run for real once the local scale
or the trainer side switches their blocks on.)"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from .helpers import BIN, REPO

sys.path.insert(0, str(REPO / "workflow" / "scripts"))
import derive

pytestmark = pytest.mark.slow
SMOKE = REPO / "results" / "smoke"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    if not (SMOKE / "study.parquet").exists():
        pytest.skip("no smoke results: run `snakemake --profile local --config scale=smoke`")
    res = tmp_path_factory.mktemp("res") / "smoke"
    (res / "tables").mkdir(parents=True)
    for name in ("study.parquet", "curves.parquet"):
        shutil.copy(SMOKE / name, res / name)
    study = pd.read_parquet(res / "study.parquet")
    # hardness: TP n = 256 vs n = 128 at p = 2 (both in the smoke study)
    hard = {"strategy": "tp", "ranks": 2, "width": 256, "margin": 0.1}
    derive.hardness_table(study, hard, 0.95).to_csv(res / "tables" / "hardness.csv", index=False)
    # init ablation: the PP k = 8 runs as one init, relabelled k = 32 runs as the other
    pp = study["strategy"] == "pp"
    study.loc[pp, "in_init_ablation"] = True
    study.loc[pp & (study["k"] == 8), "pp_init"] = "variance"
    study.loc[pp & (study["k"] == 32), "pp_init"] = "fan-in"
    study.loc[pp, "k"] = 8
    study.to_parquet(res / "study.parquet", index=False)
    # inference: two repeats of two configurations
    paths, specs = [], {}
    for strategy, p, k in (("tp", 2, 0), ("pp", 2, 8)):
        for rep in range(2):
            name = f"{strategy}-p{p}-n128-k{k}-r{rep}"
            path = res / "inference" / f"{name}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps({"strategy": strategy, "p": p, "n": 128, "k": k,
                                        "batch": 256, "latency_s": 0.01 + rep * 1e-3,
                                        "throughput_samples_per_s": 25600.0 - rep,
                                        "energy_j_per_sample": 1e-3, "energy_method": "model"}))
            paths.append(path)
            specs[name] = {"strategy": strategy, "p": p, "n": 128, "k": k, "repeat": rep}
    derive.inference_table(paths, specs, 1).to_csv(res / "tables" / "inference.csv", index=False)
    return res


@pytest.mark.parametrize("book,figure,table", [
    ("09_hardness", "fig9_hardness", None),
    ("10_inference", "fig10_inference", "inference_summary"),
    ("11_init_ablation", "fig11_init_ablation", "init_ablation"),
])
def test_notebook_runs_clean(results, tmp_path, book, figure, table):
    out = tmp_path / f"{book}.ipynb"
    figs = tmp_path / "figs"
    res = subprocess.run(
        [str(BIN / "papermill"), "--no-progress-bar", "--cwd", str(REPO),
         str(REPO / "notebooks" / f"{book}.ipynb"), str(out), "-p", "table",
         str(results / "study.parquet"), "-p", "out_dir", str(figs), "-p", "scale", "smoke"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (figs / f"{figure}.png").stat().st_size > 5000
    if table:
        assert (figs / f"{table}.csv").exists()
    nb = nbformat.read(out, as_version=4)
    mimes = [m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})]
    assert "image/png" in mimes
