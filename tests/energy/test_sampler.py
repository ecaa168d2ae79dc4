"""The background sampler: none, RAPL on a fake sysfs tree, stop, parent death."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phantom_parallel.energy.sampler import start_sampler
from phantom_parallel.energy.sources import SourceError, rapl_zones


def test_none_source_writes_metadata(tmp_path: Path) -> None:
    h = start_sampler(source="none", out_dir=tmp_path / "power", interval_s=0.1, host="n1")
    assert h.source == "none"
    h.stop()
    h.stop()
    meta = json.loads((tmp_path / "power" / "n1.sampler.json").read_text())
    assert meta["source"] == "none" and meta["log"] is None


def test_unknown_or_broken_source_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown source"):
        start_sampler(source="bogus", out_dir=tmp_path)
    with pytest.raises(SourceError, match="no RAPL zones"):
        start_sampler(source="rapl", out_dir=tmp_path, powercap_root=str(tmp_path / "nothing"))


def test_rapl_zones_skip_subzones_and_psys(powercap: Path) -> None:
    assert [z.name for z in rapl_zones(powercap)] == ["intel-rapl:0", "intel-rapl:0:1"]


def test_rapl_sampler_appends_and_stops(tmp_path: Path, powercap: Path) -> None:
    h = start_sampler("rapl", tmp_path / "power", 0.05, host="n1", powercap_root=str(powercap))
    assert h.source == "rapl" and h.running
    time.sleep(0.6)
    h.stop()
    assert not h.running
    h.stop()  # idempotent
    lines = (tmp_path / "power" / "n1.rapl.log").read_text().splitlines()
    assert lines[0] == "t_ns,zone,name,energy_uj,max_energy_range_uj"
    assert len(lines) >= 1 + 2 * 3  # at least 3 polls of 2 zones
    meta = json.loads((tmp_path / "power" / "n1.sampler.json").read_text())
    assert meta["log_format"] == "rapl-csv" and meta["exit_code"] == 0 and meta["stop_ns"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped) counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_sampler_stops_when_parent_is_killed(tmp_path: Path, powercap: Path) -> None:
    code = (
        "import sys, time, os, signal\n"
        "from phantom_parallel.energy.sampler import start_sampler\n"
        f"h = start_sampler('rapl', {str(tmp_path / 'power')!r}, 0.05, host='n1',"
        f" powercap_root={str(powercap)!r})\n"
        "print(h.pid, flush=True)\n"
        "time.sleep(0.4)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == -9
    child = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    lines = (tmp_path / "power" / "n1.rapl.log").read_text().splitlines()
    assert len(lines) >= 3 and all(line.count(",") == 4 for line in lines)
