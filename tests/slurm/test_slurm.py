"""The frontier profile's rules on a real single-node SLURM cluster at smoke scale (CPU ranks).

Opt-in: runs only with PHANTOM_SLURM_TEST=1 (CI sets it), because tests/slurm/up.sh, as root,
installs Debian's slurm-wlm + munge if needed, writes /etc/slurm/slurm.conf and starts the
daemons; down.sh stops exactly what up.sh recorded. up.sh refuses (and this test skips with the
reason) when the machine has a SLURM configuration or daemon it did not create.
Jobs are submitted with sbatch by snakemake-executor-plugin-slurm, multi-rank jobs launch their
ranks with srun (mpi resource), and the runs must equal a local-profile (torchrun) run of the
same configuration bit for bit: same loss at every step and epoch.
Skipped (with the reason) without the opt-in, when not root, when neither SLURM nor apt-get is
available, or when SLURM on this machine is not ours; PHANTOM_REQUIRE_SLURM=1 turns a skip into
a failure.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.workflow.helpers import copy_workflow, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
RUNS = ["pp-p2-n128-k8-s0", "tp-p2-n128-k0-s0", "serial-p1-n128-k0-s0"]


OPT_IN = "PHANTOM_SLURM_TEST"
REQUIRE = "PHANTOM_REQUIRE_SLURM"


def slurm_conf() -> Path:
    return Path(os.environ.get("PHANTOM_SLURM_ETC", "/etc/slurm")) / "slurm.conf"


def skip_reason() -> str | None:
    """Why the SLURM cluster test must not run here (None: it may)."""
    if os.environ.get(OPT_IN) != "1":
        return (
            f"opt-in test: set {OPT_IN}=1 to run it (as root it installs slurm-wlm and munge, "
            "writes /etc/slurm/slurm.conf and starts SLURM daemons; for disposable machines)"
        )
    if os.geteuid() != 0:
        return "the SLURM test starts slurmctld/slurmd/munged and needs root"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "neither SLURM nor apt-get (to install slurm-wlm) is available"
    check = subprocess.run(["bash", str(HERE / "up.sh"), "--check"], capture_output=True,
                           text=True, timeout=60)
    if check.returncode != 0:
        return f"SLURM on this machine is not the test's own: {check.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = skip_reason()
    if reason:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but the SLURM test cannot run: {reason}")
        pytest.skip(reason)
    down = ["bash", str(HERE / "down.sh")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(slurm_conf()))  # sbatch/squeue/srun of the test use our conf
        try:
            up = subprocess.run(["bash", str(HERE / "up.sh")], capture_output=True, text=True,
                                timeout=600)
            assert up.returncode == 0, up.stdout + up.stderr
            yield
        finally:
            subprocess.run(down, capture_output=True, timeout=120)


def _paths(wf: Path, name: str) -> str:
    (wf / f"{name}.yaml").write_text(f"paths:\n  results: {name}\n  figures: {name}-figures\n")
    return f"{name}.yaml"


def _targets(root: str) -> list[str]:
    return [f"{root}/smoke/runs/{run}/energy.json" for run in RUNS]


def test_frontier_rules_on_slurm_match_local_run(cluster, tmp_path):
    wf = copy_workflow(tmp_path / "wf", extra=("tests/slurm",))
    overlays = ["frontier/workflow-config.yaml", "tests/slurm/cpu-overrides.yaml"]
    slurm = snakemake(
        ["--profile", "frontier", "--profile", "tests/slurm/profile",
         "--configfile", *overlays, _paths(wf, "on-slurm"), "--", *_targets("on-slurm")],
        wf, timeout=900,
    )
    assert slurm.returncode == 0, slurm.stdout[-6000:]
    # jobs went through sbatch: the plugin keeps one log per SLURM job and rule
    logs = wf / ".snakemake" / "slurm_logs"
    assert list((logs / "rule_data").rglob("*.log")), "the data job was not submitted"
    for run in RUNS:
        assert list((logs / "rule_train" / run).glob("*.log")), f"{run} was not submitted"
    assert "has been submitted with SLURM jobid" in slurm.stdout

    local = snakemake(
        ["--profile", "local", "--cores", "2", "--configfile", "tests/slurm/cpu-overrides.yaml",
         _paths(wf, "on-local"), "--config", "execution={launcher: torchrun}", "--",
         *_targets("on-local")],
        wf, timeout=900,
    )
    assert local.returncode == 0, local.stdout[-6000:]

    for run in RUNS:
        a = wf / "on-slurm" / "smoke" / "runs" / run
        b = wf / "on-local" / "smoke" / "runs" / run
        ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
        p = int(run.split("-")[1][1:])
        assert ma["world_size"] == mb["world_size"] == p
        if p > 1:
            assert ma["launcher"] == "srun", ma["launcher"]
            assert mb["launcher"] == "torchrun", mb["launcher"]
        for name, cols in (("metrics.csv", ["step", "epoch", "loss"]),
                           ("epochs.csv", ["epoch", "step", "train_loss", "val_loss"])):
            fa = pd.read_csv(a / name, dtype=str)[cols]
            fb = pd.read_csv(b / name, dtype=str)[cols]
            pd.testing.assert_frame_equal(fa, fb, check_exact=True, obj=f"{run}/{name}")
        sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
        for key in ("final_train_loss", "final_val_loss", "steps", "params_total", "comm_bytes_per_step"):
            assert sa[key] == sb[key], (run, key)
        assert (a / "energy.json").exists()
