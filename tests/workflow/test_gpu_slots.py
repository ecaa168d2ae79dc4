"""workflow/scripts/gpu_slots.py, the device-slot allocator of local GPU jobs: concurrent jobs
get disjoint devices, a job waits for free ones, a killed job frees its devices, bad arguments
fail in one line. Only lock files in pytest's tmp_path; no GPU needed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import REPO

SCRIPT = REPO / "workflow" / "scripts" / "gpu_slots.py"
# the job: record its devices and its time span, hold them for a while
JOB = ('echo "$CUDA_VISIBLE_DEVICES $HIP_VISIBLE_DEVICES $(date +%s.%N)" > "$0"; sleep "$1"; '
       'echo "$(date +%s.%N)" >> "$0"')


def _start(locks: Path, need: int, out: Path, hold: float, devices: str = "0,1,2,3"):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--devices", devices, "--need", str(need), "--lock-dir",
         str(locks), "--poll", "0.1", "--", "sh", "-c", JOB, str(out), str(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _record(out: Path) -> tuple[list[str], float, float]:
    first, last = out.read_text().split("\n")[:2]
    cuda, hip, start = first.split()
    assert cuda == hip
    return cuda.split(","), float(start), float(last)


def test_concurrent_jobs_get_disjoint_devices(tmp_path):
    """Three 2-device jobs on a 4-device pool: two run at once on disjoint devices, the third
    waits until one of them ends."""
    procs = [_start(tmp_path / "locks", 2, tmp_path / f"job{i}", 2.0) for i in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stdout.read()
    recs = [_record(tmp_path / f"job{i}") for i in range(3)]
    for devs, _, _ in recs:
        assert len(devs) == 2 and set(devs) <= {"0", "1", "2", "3"}
    overlaps = 0
    for i in range(3):
        for j in range(i + 1, 3):
            (di, si, ei), (dj, sj, ej) = recs[i], recs[j]
            if si < ej and sj < ei:
                overlaps += 1
                assert not set(di) & set(dj), (recs[i], recs[j])
    assert overlaps <= 2, "three 2-device jobs ran at once on 4 devices"
    waited = [p.stdout.read() for p in procs]
    assert sum("waiting for 2 free device(s)" in w for w in waited) >= 1, waited


def test_killed_job_frees_its_devices(tmp_path):
    locks = tmp_path / "locks"
    holder = _start(locks, 4, tmp_path / "holder", 60.0)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "holder").exists():
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        os.killpg(holder.pid, signal.SIGKILL)  # the job's own session, started above
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
    nxt = _start(locks, 4, tmp_path / "next", 0.0)
    assert nxt.wait(timeout=30) == 0, nxt.stdout.read()
    assert _record(tmp_path / "next")[0] == ["0", "1", "2", "3"]


def test_device_names_from_the_callers_visible_devices(tmp_path):
    """A pool given as the caller's CUDA_VISIBLE_DEVICES entries (here UUID-like names) is
    passed through as names, not renumbered."""
    p = _start(tmp_path / "locks", 1, tmp_path / "job", 0.0, devices="GPU-aa,GPU-bb")
    assert p.wait(timeout=30) == 0, p.stdout.read()
    assert _record(tmp_path / "job")[0] == ["GPU-aa"]


def test_bad_arguments_fail_in_one_line_naming_the_flag(tmp_path):
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--devices", "0,1", "--need", "3", "--lock-dir",
         str(tmp_path), "--", "true"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "--need 3: the pool has 2 device(s)" in res.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir()), "a lock file was written for a refused job"
