"""A failed or killed training job is rerun by Snakemake and resumes from its checkpoints,
without redoing finished runs."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import BIN, copy_workflow, env, kill_tree, snakemake, wait_for

pytestmark = pytest.mark.slow

LONG = "pp-p2-n64-k4-s0"
SHORT = "serial-p1-n64-k0-s0"


def _config(wf: Path) -> list[str]:
    scale = {
        "description": "resume test: one long PP run to interrupt, one short finished run",
        "data": {"d_in": 16, "d_out": 4, "teacher_width": 64, "teacher_layers": 2, "n_train": 4096,
                 "n_val": 256, "shard_rows": 2048, "noise": 0.05, "seed": 0},
        "training": {"layers": 1, "batch_size": 16, "epochs": 4, "optimizer": "adam", "lr": 0.001,
                     "dtype": "float32", "checkpoint_every": 32, "seeds": [0]},
        "scaling": {"strategies": ["pp"], "ranks": [2], "widths": [64], "ghosts": [4]},
        "same_loss": {"runs": [{"strategy": "pp", "ranks": 2, "width": 64, "ghosts": 4},
                               {"strategy": "serial", "ranks": 1, "width": 64}],
                      "target_val_loss": 0.1},
        "cost_model": {"ranks": [1, 2], "widths": [64], "ghosts": [4]},
        "statistics": {"interval": "none"},  # one seed: no intervals asked for
    }
    (wf / "resume.yaml").write_text(yaml.safe_dump({"scale": "resume", "scales": {"resume": scale}}))
    return ["--profile", "local", "--cores", "2", "--configfile", "resume.yaml"]


def _target(run: str) -> str:
    return f"results/resume/runs/{run}/summary.json"


def _start(wf: Path, args: list[str]) -> subprocess.Popen:
    log = (wf / "snakemake.out").open("w")
    return subprocess.Popen([str(BIN / "snakemake"), *args], cwd=wf, env=env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _interrupt(wf: Path, args: list[str], kill_snakemake: bool) -> None:
    """Start both runs, wait for the long one's first checkpoint, then kill the training job
    (Snakemake sees a failed job) or Snakemake itself with its jobs (an incomplete run)."""
    proc = _start(wf, [*args, "--", _target(SHORT), _target(LONG)])
    run = wf / "results/resume/runs" / LONG
    try:
        wait_for(run / "checkpoints" / "latest.json", proc, timeout=300)
        kill_tree(proc.pid, include_root=kill_snakemake)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid, include_root=True)
    assert rc != 0
    assert not (run / "summary.json").exists()
    assert (run / "checkpoints" / "latest.json").exists(), "Snakemake deleted the checkpoints"


@pytest.mark.parametrize("kill_snakemake", [False, True], ids=["job-failed", "snakemake-killed"])
def test_rerun_resumes_and_keeps_finished_runs(tmp_path, kill_snakemake):
    wf = copy_workflow(tmp_path / "wf")
    args = _config(wf)
    first = snakemake([*args, "--", _target(SHORT)], wf)
    assert first.returncode == 0, first.stdout[-4000:]
    short = wf / "results/resume/runs" / SHORT / "summary.json"
    mtime = short.stat().st_mtime_ns

    _interrupt(wf, args, kill_snakemake)
    if kill_snakemake:  # a killed Snakemake leaves its lock behind
        assert snakemake([*args, "--unlock"], wf).returncode == 0

    again = snakemake([*args, "--", _target(SHORT), _target(LONG)], wf)
    assert again.returncode == 0, again.stdout[-4000:]
    assert short.stat().st_mtime_ns == mtime, "a finished run was redone"
    assert f"runs/{SHORT}/summary.json" not in again.stdout.split("Job stats:")[1]
    run = wf / "results/resume/runs" / LONG
    summary = json.loads((run / "summary.json").read_text())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "resume" for e in events), "the rerun did not resume"
    assert json.loads((run / "manifest.json").read_text())["resumes"]
    assert summary["steps"] == 4 * 4096 // 16
