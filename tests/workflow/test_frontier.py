"""The frontier profile at start: account check, per-rule retries, wall time per attempt.

SLURM's commands are stand-ins (a folder first on PATH) that log their arguments; `sbatch` fails,
so nothing is ever submitted, even on a machine that has a real SLURM.
"""

import os
import re
from pathlib import Path

import pytest
import yaml

from .helpers import BIN, copy_workflow, snakemake

SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "sacctmgr", "sshare", "sinfo", "scontrol",
                  "scancel", "srun")


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """SLURM commands that only log their arguments; sbatch always fails. Returns the log."""
    stub, log = tmp_path / "slurm-bin", tmp_path / "slurm-calls.log"
    stub.mkdir()
    for name in SLURM_COMMANDS:
        extra = {"sbatch": "exit 1", "sacctmgr": "echo abc123"}.get(name, "")
        (stub / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{extra}\n')
        (stub / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PHANTOM_SLURM_ACCOUNT", raising=False)
    monkeypatch.delenv("SLURM_CONF", raising=False)
    return log


def _sbatch_calls(log: Path) -> list[str]:
    return [c for c in log.read_text().splitlines() if c.startswith("sbatch")] if log.exists() else []


DATA = "results/paper/data/manifest.json"


def test_no_account_stops_before_any_submission(tmp_path, fake_slurm):
    wf = copy_workflow(tmp_path / "wf")
    res = snakemake(["--profile", "frontier", DATA], wf, timeout=300)
    assert res.returncode != 0, res.stdout
    lines = [line for line in res.stdout.splitlines() if "PHANTOM_SLURM_ACCOUNT" in line]
    assert lines and lines[0].startswith("no SLURM account: set PHANTOM_SLURM_ACCOUNT"), res.stdout
    assert _sbatch_calls(fake_slurm) == [], "a job was submitted without an account"
    assert not (wf / "results").exists()


def test_dry_run_needs_no_account(tmp_path, fake_slurm):
    wf = copy_workflow(tmp_path / "wf")
    res = snakemake(["--profile", "frontier", "--dry-run", DATA], wf, timeout=300)
    assert res.returncode == 0, res.stdout
    assert "PHANTOM_SLURM_ACCOUNT" not in res.stdout


@pytest.mark.slow
def test_account_retries_and_wall_time_per_attempt(tmp_path, fake_slurm, monkeypatch):
    """With the account set, sbatch gets -A; only training jobs are retried, with more time;
    an inference job asks once for inference.runtime_min."""
    monkeypatch.setenv("PHANTOM_SLURM_ACCOUNT", "abc123")
    wf = copy_workflow(tmp_path / "wf")
    # the data job fails (sbatch fails) and is not retried
    res = snakemake(["--profile", "frontier", DATA], wf, timeout=300)
    assert res.returncode != 0
    calls = _sbatch_calls(fake_slurm)
    assert len(calls) == 1 and "-A abc123" in calls[0] and "rule_data" in calls[0], calls
    # a training job: 1 + execution.retries submissions, runtime_min x attempt up to the cap
    (wf / "short.yaml").write_text(yaml.safe_dump({
        "execution": {"retries": 2, "max_runtime_min": 25},
        "scales": {"paper": {"training": {"runtime_min": 10}}},
    }))
    (wf / DATA).parent.mkdir(parents=True)
    (wf / DATA).touch()
    fake_slurm.unlink()
    target = "results/paper/runs/tp-p8-n16384-k0-s0/summary.json"
    res = snakemake(["--profile", "frontier", "--configfile", "frontier/workflow-config.yaml",
                     "short.yaml", "--", target], wf, timeout=300)
    assert res.returncode != 0
    calls = _sbatch_calls(fake_slurm)
    assert all("rule_train" in c and "-A abc123" in c for c in calls), calls
    assert [int(re.search(r" -t (\d+)", c)[1]) for c in calls] == [10, 20, 25]
    # an inference job: one submission (no retries) of inference.runtime_min
    (wf / "short.yaml").write_text(yaml.safe_dump({
        "execution": {"retries": 2, "max_runtime_min": 25},
        "scales": {"paper": {"training": {"runtime_min": 10}, "inference": {"runtime_min": 7}}},
    }))
    fake_slurm.unlink()
    res = snakemake(["--profile", "frontier", "--configfile", "frontier/workflow-config.yaml",
                     "short.yaml", "--", "results/paper/inference/tp-p8-n16384-k0-r0.json"], wf,
                    timeout=300)
    assert res.returncode != 0
    calls = _sbatch_calls(fake_slurm)
    assert len(calls) == 1 and "rule_infer" in calls[0], calls
    assert int(re.search(r" -t (\d+)", calls[0])[1]) == 7
