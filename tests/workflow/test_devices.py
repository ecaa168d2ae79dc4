"""Which device a study runs on, GPUs per job, and measured jobs alone (dry runs only; fast).

The GPU count is faked with PHANTOM_FAKE_GPU_COUNT (read by workflow/rules/devices.smk, for tests
only), so these run the GPU code paths on a CPU machine; nothing is launched.
"""

from pathlib import Path

import pytest
import torch
import yaml

from .helpers import REPO, copy_workflow, dry_run_jobs, snakemake

SMOKE = ["--profile", "local", "--config", "scale=smoke"]


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def _dry(wf: Path, gpus: int | None, *args: str) -> tuple[int, str, list[dict]]:
    extra = None if gpus is None else {"PHANTOM_FAKE_GPU_COUNT": str(gpus)}
    res = snakemake([*SMOKE, *args, "--dry-run", "--printshellcmds"], wf, timeout=300,
                    extra_env=extra)
    return res.returncode, res.stdout, dry_run_jobs(res.stdout)


def _train(jobs: list[dict]) -> list[dict]:
    out = [j for j in jobs if j["rule"] == "train"]
    assert out, "no training job in the dry run"
    return out


def _ranks(job: dict) -> int:
    run = Path(job["output"]).parent.name  # {strategy}-p{p}-n{n}-k{k}-s{seed}
    return int(run.split("-")[1][1:])


def test_enough_gpus_each_job_gets_its_own_devices(wf):
    """4 GPUs (more than the widest smoke run's 2 ranks): every training job runs on cuda, takes
    `gpu` = p, and starts under gpu_slots.py, which locks p of the 4 devices for it alone."""
    rc, out, jobs = _dry(wf, 4)
    assert rc == 0, out
    for job in _train(jobs):
        p = _ranks(job)
        assert job["res"].get("gpu") == str(p), job
        assert job["res"].get("measure") == "1", job
        cmd = job["shell"]
        assert f"gpu_slots.py --devices 0,1,2,3 --need {p} --lock-dir results/.gpu-slots -- " in cmd
        assert "--device cuda --backend auto" in cmd and "--threads" not in cmd
    assert "-> cpu" not in out


def test_too_few_gpus_with_auto_runs_the_whole_study_on_cpu(wf):
    rc, out, jobs = _dry(wf, 1)
    assert rc == 0, out
    assert ("execution.device auto -> cpu: run pp-p2-n128-k8-s0 of scale 'smoke' has 2 ranks "
            "and torch sees 1 GPU(s)") in out
    for job in _train(jobs):
        assert "gpu" not in job["res"] and "gpu_slots.py" not in job["shell"], job
        assert "--device cpu" in job["shell"] and "--threads 1" in job["shell"]


@pytest.mark.parametrize("gpus,needle", [
    (1, "cuda runs one rank per GPU, but run pp-p2-n128-k8-s0 of scale 'smoke' has 2 ranks "
        "and torch sees 1 GPU(s)"),
    (0, "cuda, but torch sees no GPU"),
])
def test_explicit_cuda_with_too_few_gpus_is_refused_before_any_job(wf, gpus, needle):
    res = snakemake([*SMOKE, "execution={device: cuda}", "--cores", "1"], wf, timeout=300,
                    extra_env={"PHANTOM_FAKE_GPU_COUNT": str(gpus)})
    assert res.returncode != 0, res.stdout
    assert f"config key 'execution.device': {needle}" in res.stdout, res.stdout
    assert not (wf / "results").exists(), "a job started although the device is refused"


def test_auto_asks_torch_not_device_files(wf):
    """Without the fake count, `auto` follows what this torch can use (a CPU-only torch counts
    no GPU, whatever /dev/nvidia* or /dev/kfd exist)."""
    rc, out, jobs = _dry(wf, None)
    assert rc == 0, out
    usable = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = "cuda" if usable >= 4 else "cpu"
    for job in _train(jobs):
        assert f"--device {device} " in job["shell"], job


def test_measured_jobs_run_alone_in_the_local_profile(wf):
    """Both profiles cap `measure` at 1. In the local profile every training job (time and
    energy reported) holds it, and so does every job that can be scheduled while a training job
    is pending (data, costs, energy); the jobs that hold none start only after every training
    job has finished (they need all of them), so no job ever runs beside a training job."""
    for profile in ("local", "frontier"):
        conf = yaml.safe_load((REPO / profile / "config.yaml").read_text())
        assert conf["resources"]["measure"] == 1, profile
    rc, out, jobs = _dry(wf, None)
    assert rc == 0, out
    trains = {j["output"] for j in _train(jobs)}
    producer = {f: j for j in jobs for f in j["output"].split(", ") if f}

    def after_all_training(job: dict) -> bool:
        inputs = set(job["input"].split(", "))
        return trains <= inputs or any(
            after_all_training(producer[f]) for f in inputs if f in producer)

    for job in jobs:
        if job["rule"] == "train":
            assert job["res"].get("measure") == "1", job
        elif job["res"].get("measure") != "1":
            assert job["rule"] == "all" or after_all_training(job), job
    held = {j["rule"] for j in jobs if j["res"].get("measure") == "1"}
    assert {"train", "data", "costs", "energy"} <= held


def test_frontier_training_jobs_get_exclusive_nodes(wf):
    """On SLURM `alone` means nodes of its own: sbatch --exclusive, and no `measure` (which
    would serialise the whole study on the login node's scheduler)."""
    target = "results/paper/runs/pp-p8-n16384-k32-s0/summary.json"
    res = snakemake(["--profile", "frontier", "--dry-run", target], wf, timeout=300)
    assert res.returncode == 0, res.stdout
    (job,) = [j for j in dry_run_jobs(res.stdout) if j["rule"] == "train"]
    assert job["res"]["slurm_extra"] == "--exclusive"
    assert job["res"]["measure"] == "0"


def test_measure_limit_holds_when_resources_are_given_on_the_command_line(tmp_path):
    """`--resources gpu=2` replaces the profile's whole `resources` list; the workflow then
    registers measure=1 itself (runs the one-second `costs` job in a copy of the workflow)."""
    wf = copy_workflow(tmp_path / "wf")
    res = snakemake([*SMOKE, "--resources", "gpu=2", "--", "results/smoke/costs/runs.csv"], wf,
                    timeout=300, extra_env={"PHANTOM_FAKE_GPU_COUNT": "4"})
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'measure=Resource("measure", 1)' in res.stdout and 'gpu=Resource("gpu", 2)' in res.stdout
