"""The SLURM test never touches a SLURM it did not create (fast; no root, no cluster).

tests/slurm/lib.sh reads its system paths from PHANTOM_SLURM_ETC (slurm.conf), PHANTOM_SLURM_PROC
(process table) and PHANTOM_SLURM_STATE_DIR (what up.sh started): here they are temporary
folders, so these tests never read or write the real /etc/slurm or /run, and the only processes
they signal are the stand-ins they start themselves.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MARKER = "phantom-parallel SLURM test cluster, written by tests/slurm/up.sh"


@pytest.fixture
def sandbox(tmp_path):
    """Stand-ins for /etc/slurm, /proc and the state folder, and an `id` that says non-root."""
    etc, proc, state, stub = (tmp_path / d for d in ("etc-slurm", "proc", "state", "bin"))
    for d in (etc, proc, stub):
        d.mkdir()
    # up.sh checks for foreign SLURM before it checks for root: with this `id`, a broken guard
    # ends at "needs root" instead of installing anything.
    (stub / "id").write_text("#!/bin/sh\necho 1000\n")
    (stub / "id").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_CONF",)}
    env.update(PHANTOM_SLURM_ETC=str(etc), PHANTOM_SLURM_PROC=str(proc),
               PHANTOM_SLURM_STATE_DIR=str(state), PATH=f"{stub}{os.pathsep}{env['PATH']}")
    return dict(etc=etc, proc=proc, state=state, env=env, tmp=tmp_path)


def _bash(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(HERE / script), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def _fake_process(proc: Path, pid: int, name: str, state: str = "S") -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "comm").write_text(f"{name}\n")
    (proc / str(pid) / "stat").write_text(f"{pid} ({name}) {state} 1 {pid} {pid} 0 -1\n")


def _record(state: Path, line: str) -> None:
    state.mkdir(exist_ok=True)
    with open(state / "started", "a") as f:
        f.write(line + "\n")


def test_check_passes_on_a_machine_without_slurm(sandbox):
    _fake_process(sandbox["proc"], 100, "bash")
    res = _bash("up.sh", sandbox["env"], "--check")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


def test_foreign_slurm_conf_is_refused_and_left_alone(sandbox):
    conf = sandbox["etc"] / "slurm.conf"
    text = "ClusterName=production\nSlurmctldHost=head01\n"
    conf.write_text(text)
    res = _bash("up.sh", sandbox["env"], "--check")
    assert res.returncode == 3
    assert f"{conf} exists and was not written by tests/slurm/up.sh" in res.stderr
    # the start path itself refuses before it changes anything
    res = _bash("up.sh", sandbox["env"])
    assert res.returncode == 3, res.stderr
    assert res.stderr.startswith("up.sh: refusing to start the SLURM test cluster:")
    assert str(conf) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert conf.read_text() == text
    assert not sandbox["state"].exists()


def test_own_slurm_conf_is_accepted(sandbox):
    (sandbox["etc"] / "slurm.conf").write_text(f"# {MARKER}; state in /x\nClusterName=phantomtest\n")
    res = _bash("up.sh", sandbox["env"], "--check")
    assert res.returncode == 0, res.stderr


def test_slurm_conf_variable_pointing_elsewhere_is_refused(sandbox):
    env = dict(sandbox["env"], SLURM_CONF="/opt/site/slurm.conf")
    res = _bash("up.sh", env, "--check")
    assert res.returncode == 3
    assert "SLURM_CONF=/opt/site/slurm.conf" in res.stderr


@pytest.mark.parametrize("daemon", ["slurmctld", "slurmd", "slurmdbd", "munged"])
def test_running_daemon_not_started_by_us_is_refused(sandbox, daemon):
    _fake_process(sandbox["proc"], 4242, daemon)
    res = _bash("up.sh", sandbox["env"], "--check")
    assert res.returncode == 3
    assert f"{daemon} (pid 4242) is running and was not started by tests/slurm/up.sh" in res.stderr
    res = _bash("up.sh", sandbox["env"])
    assert res.returncode == 3 and "refusing" in res.stderr
    assert not sandbox["state"].exists()


def test_daemons_recorded_by_up_sh_are_ours(sandbox):
    """Rerunning up.sh while its own cluster runs is allowed; a zombie does not count."""
    _fake_process(sandbox["proc"], 10, "munged")
    _fake_process(sandbox["proc"], 11, "slurmctld")
    _fake_process(sandbox["proc"], 12, "slurmd", state="Z")
    _record(sandbox["state"], "munged 10")
    _record(sandbox["state"], "slurmctld 11")
    res = _bash("up.sh", sandbox["env"], "--check")
    assert res.returncode == 0, res.stderr
    # a second slurmctld that up.sh did not start is foreign
    _fake_process(sandbox["proc"], 13, "slurmctld")
    res = _bash("up.sh", sandbox["env"], "--check")
    assert res.returncode == 3 and "slurmctld (pid 13)" in res.stderr


def _stand_in(sandbox, name: str) -> subprocess.Popen:
    """A process named `name` (a copy of sleep): stands in for a daemon; we started it."""
    folder = sandbox["tmp"] / f"daemon-{len(list(sandbox['tmp'].glob('daemon-*')))}"
    folder.mkdir()
    exe = folder / name
    shutil.copy(shutil.which("sleep"), exe)
    return subprocess.Popen([str(exe), "300"])


def _alive(p: subprocess.Popen) -> bool:
    stat = Path(f"/proc/{p.pid}/stat")
    return p.poll() is None and stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_down_stops_only_what_up_started(sandbox):
    env = dict(sandbox["env"], PHANTOM_SLURM_PROC="/proc")  # real processes: our stand-ins
    ours, munged, foreign = (_stand_in(sandbox, n) for n in ("slurmd", "munged", "slurmd"))
    try:
        state = sandbox["state"]
        _record(state, f"munged {munged.pid}")
        _record(state, f"slurmd {ours.pid}")
        _record(state, "slurmctld 999999999")  # long gone: nothing to cancel, nothing to stop
        (state / ".phantom-slurm-test").touch()
        created = sandbox["tmp"] / "created-key"
        created.write_text("k")
        (state / "created").write_text(f"{created}\n")
        (sandbox["etc"] / "slurm.conf").write_text(f"# {MARKER}\n")
        res = _bash("down.sh", env)
        assert res.returncode == 0, res.stderr
        assert not _alive(ours) and not _alive(munged)
        assert _alive(foreign), "down.sh stopped a process it had not started"
        assert not (sandbox["etc"] / "slurm.conf").exists()
        assert not created.exists()
        assert not state.exists()
    finally:
        for p in (ours, munged, foreign):
            p.kill()
            p.wait()


def test_down_without_state_touches_nothing(sandbox):
    env = dict(sandbox["env"], PHANTOM_SLURM_PROC="/proc")
    foreign = _stand_in(sandbox, "slurmd")
    conf = sandbox["etc"] / "slurm.conf"
    conf.write_text("ClusterName=production\n")
    try:
        res = _bash("down.sh", env)
        assert res.returncode == 0
        assert "nothing to stop" in res.stderr
        assert _alive(foreign) and conf.exists()
    finally:
        foreign.kill()
        foreign.wait()


def test_cluster_test_skips_without_opt_in():
    """The README's `pytest` never starts SLURM: without PHANTOM_SLURM_TEST=1 the test skips."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PHANTOM_SLURM_TEST", "PHANTOM_REQUIRE_SLURM")}
    env["COLUMNS"] = "400"  # the skip reason in full in the summary line
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
           "tests/slurm/test_slurm.py"]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 skipped" in res.stdout and "set PHANTOM_SLURM_TEST=1" in res.stdout, res.stdout
    # with the require flag and no opt-in, the skip becomes a failure
    res = subprocess.run(cmd, cwd=REPO, env=dict(env, PHANTOM_REQUIRE_SLURM="1"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout
    assert "PHANTOM_REQUIRE_SLURM=1 but the SLURM test cannot run: opt-in test" in res.stdout
