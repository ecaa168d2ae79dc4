"""What ``phantom-train`` records about a run in its folder: the manifest (settings, hosts,
devices, versions), the losses already logged when an epoch resumes, and the summary's means
over ``metrics.csv``."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from phantom_parallel import __version__
from phantom_parallel.atomic import read_json
from phantom_parallel.comm import Comm
from phantom_parallel.energy.devices import device_identity, rank_devices_manifest
from phantom_parallel.models import FFNConfig


def git_revision() -> str | None:
    """The commit of the checkout this package runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except OSError:
        return None


def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM or cgroup cpuset counts)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def gather_hosts(comm: Comm | None) -> list[str]:
    """Every rank's host name, in rank order (all ranks take part)."""
    host = socket.gethostname()
    if comm is None:
        return [host]
    hosts: list[Any] = [None] * comm.world_size
    dist.all_gather_object(hosts, host)
    return hosts


def gather_rank_devices(device: torch.device, local_rank: int, comm: Comm | None) -> list[Any]:
    """Every rank's device identity, in rank order (all ranks take part)."""
    rank_devices: list[Any] = [device_identity(device, local_rank=local_rank)]
    if comm is not None:
        rank_devices = [None] * comm.world_size
        dist.all_gather_object(rank_devices, device_identity(device, local_rank=local_rank))
    return rank_devices


def read_run_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's ``manifest.json`` (None: there is none).

    Raises:
        ValueError: it is not JSON or lacks ``config``/``resumes`` (one line naming it).
    """
    path = run_dir / "manifest.json"
    if not path.exists():
        return None
    manifest = read_json(path)
    if not (isinstance(manifest, dict) and isinstance(manifest.get("config"), dict)
            and isinstance(manifest.get("resumes"), list)):
        raise ValueError(f"{path}: not a run manifest (a JSON object with 'config' and "
                         "'resumes'); restore it, or remove it to resume with a new one")
    return manifest


def run_manifest(previous: dict[str, Any] | None, config: dict[str, Any],
                 resumed_at_step: int | None, *,
                 model: FFNConfig, world_size: int, hosts: list[str], launcher: str,
                 distributed: bool, data: Path, started: float, power_source: str,
                 device: torch.device, rank_devices: list[Any]) -> dict[str, Any]:
    """The run's ``manifest.json`` content: ``config`` (the CLI flags) as first launched, one
    ``resumes`` entry per resume (``resumed_at_step``; None: a fresh start), and this launch's
    model, hosts, devices and versions. ``previous``: the manifest a resumed run already has
    (:func:`read_run_manifest`; None: none). ``started``: Unix time, s."""
    if resumed_at_step is None or previous is None:
        manifest: dict[str, Any] = {"config": config, "resumes": []}
    else:
        manifest = previous
        manifest["resumes"].append({"step": resumed_at_step, "time": time.time()})
    manifest.update({
        "model": model.__dict__, "world_size": world_size, "hosts": sorted(set(hosts)),
        "ranks_per_host": {h: hosts.count(h) for h in sorted(set(hosts))},
        "launcher": launcher, "git_revision": git_revision(), "phantom_parallel": __version__,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "backend": dist.get_backend() if distributed else None,
                     "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None)},
        "data_manifest": str(data / "manifest.json"), "started_at": started,
        "power_source": power_source,
        "cpu_name": cpu_model(),
        "cpu_count": usable_cores(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        **rank_devices_manifest(rank_devices),
    })
    return manifest


def logged_losses(run_dir: Path, epoch: int) -> list[float]:
    """Losses already logged for ``epoch`` (a resumed epoch's mean covers all its steps)."""
    import pandas as pd

    m = pd.read_csv(run_dir / "metrics.csv", dtype={"loss": str})
    return [float(v) for v in m.loc[m["epoch"] == epoch, "loss"]]


def summarise(run_dir: Path, rank: int, summary: dict[str, Any]) -> dict[str, Any]:
    """Add means over the (complete) metrics.csv to the summary (rank 0 only)."""
    if rank != 0:
        return summary
    import pandas as pd

    m = pd.read_csv(run_dir / "metrics.csv", dtype={"loss": str})
    if len(m):
        summary["final_train_loss"] = float(m["loss"].iloc[-1])
    for col in ("step_time_s", "compute_time_s", "comm_time_s", "comm_bytes", "comm_calls",
                "samples_per_s"):
        vals = pd.to_numeric(m[col], errors="coerce")
        summary[f"mean_{col}"] = None if vals.isna().all() else float(vals.mean())
    summary["comm_bytes_per_step"] = summary.pop("mean_comm_bytes")
    summary["comm_calls_per_step"] = summary.pop("mean_comm_calls")
    return summary
