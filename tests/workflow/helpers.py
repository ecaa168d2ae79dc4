"""Shared helpers of the workflow tests: run Snakemake in a copy of the workflow, process trees."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOW_PATHS = ["Snakefile", "workflow", "config", "notebooks", "local", "frontier", "envs"]


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test interpreter's bin first on PATH (snakemake, torchrun, phantom-*, python)."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.pop("SNAKEMAKE_PROFILE", None)
    e.pop("PHANTOM_FAKE_GPU_COUNT", None)
    e.update(extra or {})
    return e


def copy_workflow(dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """Copy the workflow (not results) to ``dest`` so a test has its own .snakemake and outputs."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*WORKFLOW_PATHS, *extra):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def snakemake(args: list[str], cwd: Path, timeout: float = 900,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run snakemake with ``args`` in ``cwd``; stdout and stderr together in ``.stdout``."""
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=cwd,
        env=env(extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(0), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(pid: int, include_root: bool) -> None:
    """SIGKILL the descendants of ``pid`` (and ``pid`` itself if ``include_root``), by pid."""
    targets = descendants(pid) + ([pid] if include_root else [])
    for p in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until ``path`` exists (fails if ``proc`` ends first or the time runs out)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (rc {proc.returncode}) before {path} appeared")
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def dry_run_jobs(out: str) -> list[dict[str, str]]:
    """The jobs of a ``--dry-run --printshellcmds`` output: rule, output, resources, command."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", out):
        m = re.search(r"^(?:local)?rule (\w+):$", block, re.M)
        if not m:
            continue
        job = {"rule": m[1], "input": "", "output": "", "resources": "", "shell": ""}
        for key in ("input", "output", "resources"):
            r = re.search(rf"^    {key}: (.*)$", block, re.M)
            job[key] = r[1] if r else ""
        r = re.search(r"^Shell command: (.*)$", block, re.M)
        job["shell"] = r[1] if r else ""
        job["res"] = dict(kv.split("=", 1) for kv in job["resources"].split(", ") if "=" in kv)
        jobs.append(job)
    return jobs
