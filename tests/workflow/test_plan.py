"""plan.csv lists every job that asks for training wall time: the training runs and the
learning-rate sweep runs (rule lr_sweep_run), so the requested node-hours cover both."""

import csv
import sys

import yaml

from .helpers import REPO, copy_workflow, snakemake

sys.path.insert(0, str(REPO / "workflow" / "scripts"))
import plan


def _run(name: str, strategy: str, p: int) -> dict:
    return {"run": name, "strategy": strategy, "p": p, "n": 128, "k": 8 if strategy == "pp" else 0,
            "seed": 0}


def test_sweep_runs_are_rows_with_their_nodes_and_hours():
    execution = {"ranks_per_node": 8, "gpus_per_rank": 1}
    rows = plan.plan([_run("tp-p16-n128-k0-s0", "tp", 16)], execution, 120,
                     [_run("pp-lr0.001-s0", "pp", 2)])
    assert [(r["run"], r["rule"], r["nodes"], r["devices"]) for r in rows] == [
        ("tp-p16-n128-k0-s0", "train", 2, 16), ("pp-lr0.001-s0", "lr_sweep_run", 1, 2)]
    assert sum(r["requested_node_hours"] for r in rows) == (2 + 1) * 120 / 60


def test_smoke_plan_lists_every_sweep_run(tmp_path):
    """The real `plan` job of the smoke scale (a script job only: nothing is trained)."""
    wf = copy_workflow(tmp_path / "wf")
    res = snakemake(["plan", "--profile", "local", "--cores", "1", "--config", "scale=smoke"], wf,
                    timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    rows = list(csv.DictReader((wf / "results" / "smoke" / "plan.csv").open()))
    smoke = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["scales"]["smoke"]
    sweep = smoke["lr_sweep"]
    expected = {f"{fam}-lr{float(lr)!r}-s{seed}": cfg["ranks"]
                for fam, cfg in sweep["families"].items()
                for lr in sweep["values"] for seed in sweep["seeds"]}
    swept = {r["run"]: int(r["p"]) for r in rows if r["rule"] == "lr_sweep_run"}
    assert swept == expected
    trained = [r for r in rows if r["rule"] == "train"]
    assert trained and all("-lr" not in r["run"] for r in trained)
    assert {int(r["runtime_min"]) for r in rows} == {smoke["training"]["runtime_min"]}
    log = (wf / "results" / "smoke" / "logs" / "plan.log")
    text = res.stdout + (log.read_text() if log.exists() else "")
    assert f"{len(rows)} runs (of them {len(expected)} learning-rate sweep runs)" in text
