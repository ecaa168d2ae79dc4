"""plan.csv lists every job that asks for training wall time: the training runs, the
learning-rate sweep runs (rule lr_sweep_run) and the inference jobs (rule infer), so the
requested node-hours cover them all."""

import csv
import sys

import pytest
import yaml

from .helpers import REPO, copy_workflow, snakemake

sys.path.insert(0, str(REPO / "workflow" / "scripts"))
import plan


def _run(name: str, strategy: str, p: int) -> dict:
    return {"run": name, "strategy": strategy, "p": p, "n": 128, "k": 8 if strategy == "pp" else 0,
            "seed": 0}


def test_sweep_and_inference_jobs_are_rows_with_their_nodes_and_hours():
    execution = {"ranks_per_node": 8, "gpus_per_rank": 1}
    rows = plan.plan([_run("tp-p16-n128-k0-s0", "tp", 16)], execution, 120,
                     [_run("pp-lr0.001-s0", "pp", 2)], [_run("tp-p32-n128-k0-r0", "tp", 32)])
    assert [(r["run"], r["rule"], r["nodes"], r["devices"]) for r in rows] == [
        ("tp-p16-n128-k0-s0", "train", 2, 16), ("pp-lr0.001-s0", "lr_sweep_run", 1, 2),
        ("tp-p32-n128-k0-r0", "infer", 4, 32)]
    assert sum(r["requested_node_hours"] for r in rows) == (2 + 1 + 4) * 120 / 60
    assert plan.summary(rows) == ("3 jobs (1 training runs, 1 learning-rate sweep runs, "
                                  "1 inference jobs), at most 14.0 node-hours requested")
    assert plan.summary(rows[:1]) == "1 jobs (1 training runs), at most 4.0 node-hours requested"
    short = plan.plan([], execution, 120, (), [_run("tp-p32-n128-k0-r0", "tp", 32)], 30)
    assert [(r["runtime_min"], r["requested_node_hours"]) for r in short] == [(30, 4 * 30 / 60)]


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
    inferred = [r for r in rows if r["rule"] == "infer"]
    assert smoke["inference"]["enabled"] and inferred  # every infer job of the DAG is listed
    dag = snakemake(["-n", "--profile", "local", "--config", "scale=smoke"], wf, timeout=300)
    infer_jobs = next(line for line in dag.stdout.splitlines() if line.split()[:1] == ["infer"])
    assert int(infer_jobs.split()[1]) == len(inferred)
    assert {int(r["runtime_min"]) for r in rows} == {smoke["training"]["runtime_min"]}
    log = (wf / "results" / "smoke" / "logs" / "plan.log")
    text = res.stdout + (log.read_text() if log.exists() else "")
    assert (f"{len(rows)} jobs ({len(trained)} training runs, {len(expected)} learning-rate "
            f"sweep runs, {len(inferred)} inference jobs)") in text


@pytest.mark.slow
def test_docs_quote_the_paper_plan(tmp_path):
    """docs/frontier.md quotes what `snakemake --profile frontier plan` prints for the committed
    config (the plan is a local rule: nothing is submitted)."""
    wf = copy_workflow(tmp_path / "wf")
    res = snakemake(["--profile", "frontier", "plan"], wf, timeout=600,
                    extra_env={"PHANTOM_SLURM_ACCOUNT": "test"})
    assert res.returncode == 0, res.stdout[-3000:]
    line = next(x for x in res.stdout.splitlines() if "node-hours requested" in x)
    doc = " ".join((REPO / "docs" / "frontier.md").read_text().split())
    assert f"`{line.strip()}`" in doc, line
