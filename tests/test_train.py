"""The trainer CLI end to end: determinism, kill-and-resume, bad input, dead ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.data import DataConfig, generate
from phantom_parallel.distributed import first_slurm_host, read_launch_env

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "ds"
    generate(DataConfig(d_in=8, d_out=2, teacher_width=32, teacher_layers=2, n_train=2048,
                        n_val=256, shard_rows=512, noise=0.05, seed=0), out)
    return out


def train_cmd(data: Path, run_dir: Path, *extra: str, p: int = 2, strategy: str = "pp") -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={p}"] if p > 1 else [sys.executable]
    args = ["-m", "phantom_parallel.train", "--data", str(data), "--run-dir", str(run_dir),
            "--strategy", strategy, "--width", "32", "--layers", "2", "--batch-size", "16",
            "--power-source", "none", "--no-progress", "--threads", "1"]
    if strategy == "pp":
        args += ["--ghosts", "2"]
    return [*launcher, *args, *extra]


def run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout, check=False)


def losses(run_dir: Path) -> list[str]:
    return pd.read_csv(run_dir / "metrics.csv", dtype={"loss": str})["loss"].tolist()


def final_weights(run_dir: Path) -> list[dict[str, torch.Tensor]]:
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    shards = sorted((run_dir / "checkpoints" / f"step-{latest['step']:08d}").glob("rank-*.pt"))
    return [torch.load(s, weights_only=False)["model"] for s in shards]


def test_same_seed_same_command_gives_identical_losses(data_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        res = run(train_cmd(data_dir, d, "--max-steps", "40"))
        assert res.returncode == 0, res.stderr
    assert len(losses(a)) == 40
    assert losses(a) == losses(b)
    for wa, wb in zip(final_weights(a), final_weights(b), strict=True):
        for key in wa:
            assert torch.equal(wa[key], wb[key]), key
    summary = json.loads((a / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["world_size"] == 2
    shape = FFNShape(d_in=8, width=32, layers=2, d_out=2, batch=16, p=2, ghosts=2)
    assert summary["matmul_flops_per_step"] == predict("pp", shape).matmul_flops
    assert summary["params_total"] == predict("pp", shape).params_total
    events = [json.loads(line)["event"] for line in (a / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_start" and events[-1] == "run_end"
    assert events.index("measure_start") < events.index("measure_end")


def test_killed_run_resumes_to_the_uninterrupted_result(data_dir: Path, tmp_path: Path) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    extra = ("--epochs", "3", "--checkpoint-every", "7", "--eval-every", "20")  # 3 x 128 steps
    res = run(train_cmd(data_dir, full, *extra))
    assert res.returncode == 0, res.stderr

    proc = subprocess.Popen(train_cmd(data_dir, killed, *extra), env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 150:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(latest.read_text())["step"]
    assert 150 <= killed_at < 384, "the run must be killed mid-way"
    assert not (killed / "summary.json").exists()

    res = run(train_cmd(data_dir, killed, *extra))
    assert res.returncode == 0, res.stderr
    assert losses(killed) == losses(full)
    pd.testing.assert_frame_equal(
        pd.read_csv(killed / "epochs.csv", dtype=str).drop(columns="t_ns"),
        pd.read_csv(full / "epochs.csv", dtype=str).drop(columns="t_ns"))
    for wa, wb in zip(final_weights(killed), final_weights(full), strict=True):
        for key in wa:
            assert torch.equal(wa[key], wb[key]), key
    # evals.csv continues without duplicates: the same evaluated steps and losses
    ek, ef = (pd.read_csv(d / "evals.csv", dtype={"val_loss": str}) for d in (killed, full))
    cols = ["step", "samples", "epoch", "val_loss"]
    pd.testing.assert_frame_equal(ek[cols], ef[cols])
    assert ef["step"].tolist() == sorted({*range(20, 385, 20), 128, 256, 384})
    assert ek["train_time_s"].is_monotonic_increasing
    events = (killed / "events.jsonl").read_text()
    assert '"resume"' in events
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["resumes"][0]["step"] == json.loads(latest.read_text())["step"] or manifest["resumes"]


def test_serial_and_tp_follow_the_same_loss_curve(data_dir: Path, tmp_path: Path) -> None:
    """TP computes the dense model: its losses equal serial's up to float32 reduction order."""
    res_s = run(train_cmd(data_dir, tmp_path / "s", "--max-steps", "20", p=1, strategy="serial"))
    res_t = run(train_cmd(data_dir, tmp_path / "t", "--max-steps", "20", strategy="tp"))
    assert res_s.returncode == 0 and res_t.returncode == 0, res_s.stderr + res_t.stderr
    s = [float(v) for v in losses(tmp_path / "s")]
    t = [float(v) for v in losses(tmp_path / "t")]
    assert t == pytest.approx(s, rel=1e-4)
    tp_summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    serial_summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert tp_summary["params_total"] == serial_summary["params_total"]
    assert tp_summary["params_per_rank"] < serial_summary["params_total"]


@pytest.mark.parametrize(("args", "p", "message"), [
    (("--width", "33"), 2, "--width=33 is not divisible by the number of ranks p=2"),
    (("--ghosts", "17"), 2, "--ghosts=17 must satisfy 1 <= k <= m"),
    (("--strategy", "magic"), 1, "invalid choice: 'magic'"),
    (("--batch-size", "4096"), 2, "--batch-size=4096 exceeds the 2048 training rows"),
    (("--eval-every", "129"), 2, "--eval-every=129 must be 0 (epoch ends only) or between 1 and "
                                 "the 128 steps of an epoch"),
    (("--eval-every", "-1"), 1, "--eval-every=-1 must be 0"),
    (("--strategy", "fsdp", "--batch-size", "15"), 2,
     "--batch-size=15 is not divisible by the number of ranks p=2"),
    (("--pp-init", "xavier"), 1, "invalid choice: 'xavier'"),
])
def test_bad_input_is_rejected_naming_the_value(data_dir: Path, tmp_path: Path, args, p, message) -> None:
    run_dir = tmp_path / "run"
    res = run(train_cmd(data_dir, run_dir, *args, p=p))
    assert res.returncode != 0
    assert message in res.stderr
    assert not run_dir.exists(), "nothing may be written before the input is checked"


def test_missing_data_shard_is_named(data_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    (broken / "train-x-00002.npy").unlink()
    res = run(train_cmd(broken, tmp_path / "run", p=1, strategy="serial"))
    assert res.returncode != 0
    assert "train-x-00002.npy" in res.stderr


def test_resume_with_another_world_size_fails_and_keeps_the_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run(train_cmd(data_dir, run_dir, "--max-steps", "5", strategy="tp")).returncode == 0
    (run_dir / "summary.json").unlink()  # pretend it was interrupted
    before = sorted(p.name for p in (run_dir / "checkpoints").rglob("*"))
    res = run(train_cmd(data_dir, run_dir, "--max-steps", "5", p=4, strategy="tp"))
    assert res.returncode != 0
    assert "world size 2, this launch has world size 4" in one_error(res, p=4)
    assert sorted(p.name for p in (run_dir / "checkpoints").rglob("*")) == before
    assert len(losses(run_dir)) == 5


def test_a_dead_rank_ends_the_job_nonzero_without_hanging(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(data_dir, run_dir, "--epochs", "1000", "--timeout-s", "30"),
                            env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run_dir / "metrics.csv").exists():
            time.sleep(0.1)
        time.sleep(1.0)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True,
                                 check=False).stdout.split()
        assert len(workers) == 2, workers
        os.kill(int(workers[1]), signal.SIGKILL)
        t0 = time.time()
        rc = proc.wait(timeout=90)
        assert rc != 0
        assert time.time() - t0 < 90
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_srun_environment_is_read() -> None:
    env = read_launch_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "16", "SLURM_LOCALID": "3",
                           "SLURM_JOB_NODELIST": "frontier[00012-00013]", "SLURM_JOB_ID": "123456"})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (3, 16, 3, "srun")
    assert env.master_addr == "frontier00012"
    assert env.master_port == 20000 + 123456 % 20000
    assert first_slurm_host("node7") == "node7"
    torchrun = read_launch_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                "MASTER_ADDR": "h", "MASTER_PORT": "29500"})
    assert torchrun.launcher == "torchrun" and torchrun.master_port == 29500


def test_tp_and_pp_on_one_process_train_as_the_dense_ffn(data_dir: Path, tmp_path: Path) -> None:
    """World size 1 runs every strategy through the same code path: PP = TP = dense."""
    curves = {}
    for strategy in ("serial", "tp", "pp"):
        res = run(train_cmd(data_dir, tmp_path / strategy, "--max-steps", "10", p=1,
                            strategy=strategy))
        assert res.returncode == 0, res.stderr
        curves[strategy] = [float(v) for v in losses(tmp_path / strategy)]
    assert curves["tp"] == pytest.approx(curves["serial"], rel=1e-5)
    assert curves["pp"] == pytest.approx(curves["serial"], rel=1e-5)


def test_a_finished_run_relaunched_with_other_settings_is_refused(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "done"
    cmd = train_cmd(data_dir, run_dir, "--max-steps", "3", p=1, strategy="serial")
    assert run(cmd).returncode == 0
    again = run(cmd)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    other = run([*cmd, "--lr", "0.01"])
    assert other.returncode != 0
    assert "holds a finished run with other settings: lr=0.001 (this launch: 0.01)" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    manifest = json.loads((run_dir / "manifest.json").read_text())  # a run from before the
    del manifest["config"]["data_sha256"]  # data's identity was recorded: not compared
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = run(cmd)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr


def test_without_a_progress_bar_rank0_logs_every_n_steps(data_dir: Path, tmp_path: Path) -> None:
    res = run(train_cmd(data_dir, tmp_path / "r", "--max-steps", "6", "--log-every", "2", p=1,
                        strategy="serial"))
    assert res.returncode == 0, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("phantom-train: step ")]
    assert [x.split()[2] for x in lines] == ["2/6", "4/6", "6/6"]
def test_evals_csv_time_and_test_loss(data_dir: Path, tmp_path: Path) -> None:
    """--eval-every 30 over 1.5 epochs (128 steps each): rows at every 30th step, each epoch end
    and the last step; train_time_s = cumulative step_time_s; final_test_loss from the test
    split; --pp-init in the manifest's config."""
    run_dir = tmp_path / "run"
    res = run(train_cmd(data_dir, run_dir, "--epochs", "2", "--max-steps", "192",
                        "--eval-every", "30", p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    ev = pd.read_csv(run_dir / "evals.csv")
    assert list(ev.columns) == ["step", "samples", "epoch", "val_loss", "train_time_s", "t_ns"]
    assert ev["step"].tolist() == [30, 60, 90, 120, 128, 150, 180, 192]
    assert ev["epoch"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert (ev["samples"] == ev["step"] * 16).all()
    cum = pd.read_csv(run_dir / "metrics.csv")["step_time_s"].cumsum()
    assert ev["train_time_s"].tolist() == pytest.approx(cum.iloc[ev["step"] - 1].tolist(), rel=1e-12)
    assert ev["t_ns"].is_monotonic_increasing
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_val_loss"] == pytest.approx(ev["val_loss"].iloc[-1], rel=1e-12)
    assert summary["final_test_loss"] is not None and summary["final_test_loss"] > 0
    assert summary["final_test_loss"] != summary["final_val_loss"]
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert epochs["val_loss"].iloc[0] == pytest.approx(ev.loc[ev["step"] == 128, "val_loss"].item())
    config = json.loads((run_dir / "manifest.json").read_text())["config"]
    assert (config["pp_init"], config["eval_every"]) == ("variance", 30)


def test_dataset_without_test_split_gives_null_test_loss(tmp_path: Path) -> None:
    data = tmp_path / "ds"
    generate(DataConfig(d_in=8, d_out=2, teacher_width=32, teacher_layers=2, n_train=512,
                        n_val=64, n_test=0, shard_rows=512, seed=0), data)
    res = run(train_cmd(data, tmp_path / "run", "--max-steps", "3", p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final_test_loss"] is None


def test_fsdp_follows_serial_and_resumes(data_dir: Path, tmp_path: Path) -> None:
    """fsdp on 2 gloo ranks (8 of the 16 rows of each batch per rank, gradients averaged)
    follows serial's loss curve; a run stopped at step 12 and continued to 24 ends with the
    losses of the uninterrupted run."""
    res_s = run(train_cmd(data_dir, tmp_path / "s", "--max-steps", "24", p=1, strategy="serial"))
    res_f = run(train_cmd(data_dir, tmp_path / "f", "--max-steps", "24", strategy="fsdp"))
    assert res_s.returncode == 0 and res_f.returncode == 0, res_s.stderr + res_f.stderr
    s = [float(v) for v in losses(tmp_path / "s")]
    f = [float(v) for v in losses(tmp_path / "f")]
    assert f == pytest.approx(s, rel=1e-4)
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    serial = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["params_total"] == serial["params_total"]
    assert summary["comm_bytes_per_step"] is None  # torch's collectives: not in our ledger
    assert summary["final_val_loss"] == pytest.approx(serial["final_val_loss"], rel=1e-4)
    part = tmp_path / "part"
    assert run(train_cmd(data_dir, part, "--max-steps", "12", strategy="fsdp")).returncode == 0
    (part / "summary.json").unlink()
    res = run(train_cmd(data_dir, part, "--max-steps", "24", strategy="fsdp"))
    assert res.returncode == 0, res.stderr
    assert losses(part) == losses(tmp_path / "f")


def test_checkpoint_from_before_pp_init_resumes_as_fan_in(tmp_path: Path) -> None:
    """Checkpoints that predate --pp-init/--eval-every were fan-in runs validated at epoch ends;
    those that predate the data's identity are not checked for it."""
    from phantom_parallel.checkpoint import Checkpointer, ResumeMismatchError
    from phantom_parallel.train import LEGACY_RESUME

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.json").write_text(json.dumps(
        {"step": 4, "epoch": 0, "step_in_epoch": 4, "world_size": 1, "config": {"seed": 0}}))
    old = Checkpointer(tmp_path, 0, 1, {"seed": 0, "pp_init": "fan-in", "eval_every": 0,
                                        "data_sha256": "ab12"}, legacy=LEGACY_RESUME)
    assert old.check_compatible().step == 4
    new = Checkpointer(tmp_path, 0, 1, {"seed": 0, "pp_init": "variance"}, legacy=LEGACY_RESUME)
    with pytest.raises(ResumeMismatchError, match="pp_init='fan-in', this launch has pp_init='variance'"):
        new.check_compatible()


def test_manifest_records_the_usable_cores(data_dir: Path, tmp_path: Path) -> None:
    """Oversubscription is judged against the cores a run could use (issue 11)."""
    res = run(train_cmd(data_dir, tmp_path / "r", "--max-steps", "2", p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["cpu_count"] == len(os.sched_getaffinity(0))


# ------------------------------------------------------------------------------------------
# bad input: one line (exit status 2, no traceback), before anything is written
# ------------------------------------------------------------------------------------------


def one_error(res: subprocess.CompletedProcess[str], p: int = 1) -> str:
    """The trainer's error line: printed once (by rank 0 under torchrun); at p = 1 the whole
    stderr, with exit status 2."""
    lines = [x for x in res.stderr.splitlines() if x.startswith("phantom-train: error: ")]
    assert len(lines) == 1, res.stderr
    if p == 1:
        assert res.returncode == 2 and res.stderr.strip() == lines[0], res.stderr
    else:
        assert res.returncode != 0
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*"))
            if f.is_file()}


def _rapl_works() -> bool:
    from phantom_parallel.energy.sources import SourceError, resolve

    try:
        resolve("rapl")
    except SourceError:
        return False
    return True


@pytest.mark.parametrize(("args", "p", "message"), [
    (("--lr", "-1"), 1, "--lr=-1.0 must be >= 0"),
    (("--lr", "nan"), 1, "--lr=nan must be >= 0"),
    (("--optimizer", "sgd", "--momentum", "-1"), 1, "--momentum=-1.0 must be >= 0"),
    (("--power-interval-ms", "0"), 1, "--power-interval-ms=0.0 must be > 0"),
    (("--threads", "-1"), 1, "--threads=-1 must be >= 1"),
    (("--checkpoint-every", "-1"), 1, "--checkpoint-every=-1 must be >= 0"),
    (("--timeout-s", "-5"), 1, "--timeout-s=-5.0 must be > 0"),
    (("--backend", "nccl"), 1, "--backend=nccl: nccl needs --device=cuda"),
    (("--lr", "-1"), 2, "--lr=-1.0 must be >= 0"),
    (("--seed", "-1"), 1, "--seed=-1 must be >= 0"),
    (("--ghosts", "-3"), 1, "--ghosts=-3 must be >= 1"),  # tp: unused, still checked
    pytest.param(("--power-source", "rapl"), 1, "rapl: ",
                 marks=pytest.mark.skipif(_rapl_works(), reason="RAPL works here")),
])
def test_bad_flags_are_one_line_before_the_run_folder(data_dir: Path, tmp_path: Path, args, p,
                                                       message) -> None:
    run_dir = tmp_path / "run"
    res = run(train_cmd(data_dir, run_dir, *args, p=p, strategy="tp"))
    assert message in one_error(res, p)
    assert not run_dir.exists()


@pytest.mark.parametrize("damage", ["{bad", "{}", "missing shard"])
def test_bad_data_folder_is_one_line(data_dir: Path, tmp_path: Path, damage: str) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    if damage == "missing shard":
        (broken / "val-y-00000.npy").unlink()
    else:
        (broken / "manifest.json").write_text(damage)
    res = run(train_cmd(broken, tmp_path / "run", p=1, strategy="serial"))
    line = one_error(res)
    assert f"--data={broken}: " in line
    assert ("val-y-00000.npy" if damage == "missing shard" else "manifest.json") in line
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_a_file_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for run_dir in (tmp_path / "afile", tmp_path / "afile" / "run"):
        res = run(train_cmd(data_dir, run_dir, p=1, strategy="serial"))
        assert f"--run-dir={run_dir}: {tmp_path / 'afile'} is a file, not a folder" in one_error(res)


# ------------------------------------------------------------------------------------------
# resume: everything read and checked before the run folder is written
# ------------------------------------------------------------------------------------------

CKPT = ("--checkpoint-every", "2")


@pytest.fixture(scope="module")
def unfinished(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A serial run stopped at step 6 (checkpoints of steps 4 and 6 kept) and the
    uninterrupted run to step 10."""
    base = tmp_path_factory.mktemp("resume")
    full, part = base / "full", base / "part"
    for folder, steps in ((full, "10"), (part, "6")):
        res = run(train_cmd(data_dir, folder, "--max-steps", steps, *CKPT, p=1, strategy="serial"))
        assert res.returncode == 0, res.stderr
    (part / "summary.json").unlink()
    return part, full


def _copy(src: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, tmp_path / "run"))


@pytest.mark.parametrize(("damage", "message"), [
    ("lr", "checkpoints/latest.json was written with lr=0.001, this launch has lr=0.01"),
    ("latest.json", "checkpoints/latest.json: not valid JSON"),
    ("manifest.json", "manifest.json: not valid JSON"),
    ("metrics.csv", "metrics.csv line 5: 'garbage' is not a row of numbers"),
    ("both checkpoints", "checkpoints/step-00000006/rank-00000.pt cannot be loaded"),
    ("not,a,csv", "metrics.csv: missing columns step, epoch, loss, step_time_s"),
    ("no step_time_s", "metrics.csv: missing column step_time_s; restore the file"),
    ("twice metrics.csv", "metrics.csv: a step's row is there twice"),
])
def test_a_bad_resume_is_one_line_and_writes_nothing(data_dir: Path, tmp_path: Path, unfinished,
                                                     damage: str, message: str) -> None:
    run_dir = _copy(unfinished[0], tmp_path)
    extra: tuple[str, ...] = ()
    if damage == "lr":
        extra = ("--lr", "0.01")
    elif damage == "metrics.csv":
        lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
        (run_dir / "metrics.csv").write_text("".join([*lines[:4], "garbage\n", *lines[4:]]))
    elif damage == "both checkpoints":
        for step in (4, 6):
            (run_dir / "checkpoints" / f"step-{step:08d}" / "rank-00000.pt").write_bytes(b"x")
    elif damage == "manifest.json":
        (run_dir / "manifest.json").write_text("{bad")
    elif damage == "not,a,csv":
        (run_dir / "metrics.csv").write_text("not,a,csv\n")
    elif damage == "no step_time_s":
        pd.read_csv(run_dir / "metrics.csv").drop(columns="step_time_s").to_csv(
            run_dir / "metrics.csv", index=False)
    elif damage == "twice metrics.csv":
        lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
        (run_dir / "metrics.csv").write_text("".join([*lines[:3], lines[2], *lines[3:]]))
    else:
        (run_dir / "checkpoints" / "latest.json").write_text("{bad")
    before = snapshot(run_dir)
    res = run(train_cmd(data_dir, run_dir, "--max-steps", "10", *CKPT, *extra, p=1,
                        strategy="serial"))
    assert message in one_error(res)
    assert snapshot(run_dir) == before


def test_metrics_rows_lost_before_the_checkpoint_are_warned_and_the_run_goes_on(
        data_dir: Path, tmp_path: Path, unfinished) -> None:
    """Rows of steps 4-6 not on disk (a node failed: the checkpoint is synced, the logs only
    flushed): the resume says which steps it lacks and trains on to the uninterrupted losses."""
    run_dir = _copy(unfinished[0], tmp_path)
    lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
    (run_dir / "metrics.csv").write_text("".join(lines[:4]))  # header, steps 1 to 3
    res = run(train_cmd(data_dir, run_dir, "--max-steps", "10", *CKPT, p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    assert "metrics.csv: no row for 3 steps from 4 to 6 of the 6 the checkpoint has" in \
        res.stderr
    full = losses(unfinished[1])
    assert losses(run_dir) == full[:3] + full[6:]


def test_an_events_line_cut_off_by_the_kill_is_dropped_on_resume(data_dir: Path, tmp_path: Path,
                                                                 unfinished) -> None:
    """The resume's events start on a line of their own: the file reads whole afterwards (as
    phantom-energy and the study's curves read it), with no cut line left in it."""
    from phantom_parallel.energy.windows import read_events

    run_dir = _copy(unfinished[0], tmp_path)
    events = run_dir / "events.jsonl"
    whole = events.read_text()
    events.write_text(whole + '{"t_ns": 17965337600')
    res = run(train_cmd(data_dir, run_dir, "--max-steps", "10", *CKPT, p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    text = events.read_text()
    assert text.startswith(whole) and "17965337600{" not in text and text.endswith("\n")
    warnings: list[str] = []
    assert [e["event"] for e in read_events(events, warnings)][-1] == "run_end" and not warnings


@pytest.mark.parametrize("damage", ["truncated shard", "missing step folder"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(data_dir: Path, tmp_path: Path,
                                                                unfinished, damage: str) -> None:
    import shutil

    run_dir = _copy(unfinished[0], tmp_path)
    step6 = run_dir / "checkpoints" / "step-00000006"
    if damage == "missing step folder":
        shutil.rmtree(step6)
    else:
        shard = step6 / "rank-00000.pt"
        shard.write_bytes(shard.read_bytes()[:300])
    with (run_dir / "metrics.csv").open("a") as f:
        f.write("7,0,0.5")  # a line cut off by the kill: dropped
    res = run(train_cmd(data_dir, run_dir, "--max-steps", "10", *CKPT, p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    assert "resuming from the previous one, step 4" in res.stderr
    assert "step-00000006/rank-00000.pt" in res.stderr
    assert losses(run_dir) == losses(unfinished[1])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == \
        ["latest.json", "step-00000008", "step-00000010"]


def test_a_rank_with_a_damaged_shard_takes_every_rank_back(data_dir: Path, tmp_path: Path) -> None:
    """p = 2: only rank 1's shard of the latest checkpoint is bad; both ranks resume from the
    previous checkpoint and end with the uninterrupted run's losses."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert run(train_cmd(data_dir, full, "--max-steps", "8", *CKPT, strategy="tp")).returncode == 0
    assert run(train_cmd(data_dir, part, "--max-steps", "6", *CKPT, strategy="tp")).returncode == 0
    (part / "summary.json").unlink()
    (part / "checkpoints" / "step-00000006" / "rank-00001.pt").write_bytes(b"x")
    res = run(train_cmd(data_dir, part, "--max-steps", "8", *CKPT, strategy="tp"))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("resuming from the previous one, step 4") == 1
    assert losses(part) == losses(full)


# ------------------------------------------------------------------------------------------
# a run and its data; a finished run going on
# ------------------------------------------------------------------------------------------

TINY = ("--width", "16", "--max-steps", "2")


def _tiny_data(out: Path, noise: float = 0.05, n_test: int = 16) -> Path:
    generate(DataConfig(d_in=4, d_out=2, teacher_width=8, teacher_layers=1, teacher_rank=2,
                        n_train=64, n_val=16, n_test=n_test, shard_rows=32, noise=noise, seed=0),
             out, overwrite=True)
    return out


def test_a_run_is_not_resumed_on_regenerated_data(tmp_path: Path) -> None:
    """--data regenerated with another configuration in the same folder: the unfinished run and
    the finished one are refused naming --data, before anything is written."""
    data = _tiny_data(tmp_path / "ds")
    run_dir = tmp_path / "run"
    cmd = train_cmd(data, run_dir, *TINY, p=1, strategy="serial")
    assert run(cmd).returncode == 0
    _tiny_data(data, noise=0.1)
    for finished in (True, False):
        if not finished:
            (run_dir / "summary.json").unlink()
        before = snapshot(run_dir)
        line = one_error(run(cmd))
        assert f"--data={data}: holds other data than the run in --run-dir={run_dir}" in line
        assert snapshot(run_dir) == before
    _tiny_data(data)  # the same bytes again: resumes
    assert run(cmd).returncode == 0
    _tiny_data(data, n_test=8)  # another test split only: the run's data; it resumes and
    (run_dir / "summary.json").unlink()  # reports its test loss on the new split
    assert run(cmd).returncode == 0
    assert json.loads((run_dir / "summary.json").read_text())["final_test_loss"] is not None


def test_a_finished_run_goes_on_with_more_steps(tmp_path: Path) -> None:
    """A larger --max-steps on a finished run goes on from its final checkpoint to the
    uninterrupted run's losses and a rewritten summary; the resume's line shows the loss of the
    last step (not nan), also when no step is left to train."""
    data = _tiny_data(tmp_path / "ds")
    full, part = tmp_path / "full", tmp_path / "part"
    assert run(train_cmd(data, full, "--width", "16", "--max-steps", "3", p=1,
                         strategy="serial")).returncode == 0
    cmd = train_cmd(data, part, *TINY, p=1, strategy="serial")
    assert run(cmd).returncode == 0
    (part / "summary.json").unlink()  # resumed from the final checkpoint: nothing left to train
    res = run(cmd)
    assert res.returncode == 0, res.stderr
    assert f"final loss {float(losses(part)[-1]):.6g} " in res.stdout
    import shutil

    bare = Path(shutil.copytree(part, tmp_path / "bare"))
    shutil.rmtree(bare / "checkpoints")
    before = snapshot(bare)
    line = one_error(run(train_cmd(data, bare, "--width", "16", "--max-steps", "3", p=1,
                                   strategy="serial")))
    assert f"--run-dir={bare} holds a finished run without a checkpoint to go on from" in line
    assert snapshot(bare) == before
    res = run([*cmd, "--max-steps", "3"])
    assert res.returncode == 0, res.stderr
    assert "finished at step 2; going on to step 3" in res.stdout
    assert losses(part) == losses(full)
    summary = json.loads((part / "summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["final_train_loss"] == float(losses(full)[-1])
    assert "nothing to do" in run([*cmd, "--max-steps", "3"]).stdout


def test_an_empty_metrics_csv_without_a_checkpoint_is_a_fresh_start(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "ds")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("")
    res = run(train_cmd(data, run_dir, *TINY, p=1, strategy="serial"))
    assert res.returncode == 0, res.stderr
    assert len(losses(run_dir)) == 2
    assert json.loads((run_dir / "summary.json").read_text())["final_train_loss"] > 0
