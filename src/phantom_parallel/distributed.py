"""Process-group start-up for ``torchrun`` and ``srun`` launches.

``torchrun`` exports RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
``srun`` exports SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or the
per-node task list), SLURM_JOB_NODELIST and SLURM_JOB_ID; from these we derive the rendezvous
address (first host of the allocation, via ``scontrol show hostnames``) and a port derived from
the job id so that concurrent jobs do not collide.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from phantom_parallel.comm import Comm


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    launcher: str  # "torchrun", "srun" or "single"
    master_addr: str | None = None
    master_port: int | None = None


def first_slurm_host(nodelist: str) -> str:
    """First host name of a SLURM node list such as ``frontier[00012-00015,00020]``."""
    if shutil.which("scontrol"):
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()[0]
    match = re.match(r"([^\[,]+)(?:\[([^\]]+)\])?", nodelist)
    if not match:
        raise ValueError(f"cannot parse SLURM_JOB_NODELIST={nodelist!r}")
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def read_launch_env(environ: Mapping[str, str] = os.environ) -> LaunchEnv:
    """Ranks from torchrun's variables, else from srun's, else a single process."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return LaunchEnv(int(environ["RANK"]), int(environ["WORLD_SIZE"]),
                         int(environ.get("LOCAL_RANK", "0")), "torchrun",
                         environ.get("MASTER_ADDR"), int(environ.get("MASTER_PORT", "0")) or None)
    if "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
        nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST", "localhost")
        job_id = int(environ.get("SLURM_JOB_ID", "0"))
        port = int(environ.get("MASTER_PORT") or 20000 + job_id % 20000)
        addr = environ.get("MASTER_ADDR") or first_slurm_host(nodelist)
        return LaunchEnv(int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"]),
                         int(environ.get("SLURM_LOCALID", "0")), "srun", addr, port)
    return LaunchEnv(0, 1, 0, "single")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the torchrun agent) dies, so that a
    killed launcher never leaves ranks running on (and writing into the run folder)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getppid()
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def resolve_backend(backend: str, device: str) -> str:
    if backend == "auto":
        return "nccl" if device.startswith("cuda") else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend={backend!r}: choose auto, gloo or nccl (nccl is RCCL on ROCm)")
    return backend


def init_distributed(env: LaunchEnv, backend: str, device: str,
                     timeout_s: float = 300.0, timing: str = "events") -> Comm | None:
    """Start the default process group (if world size > 1) and return its :class:`Comm`.

    ``timeout_s`` bounds every collective: a rank that waits longer on a dead peer raises
    instead of hanging. ``timing``: how the ledger times accelerator collectives
    (:class:`~phantom_parallel.comm.Comm`).
    """
    if device.startswith("cuda"):
        torch.cuda.set_device(env.local_rank % max(torch.cuda.device_count(), 1))
    if env.launcher == "torchrun":
        die_with_parent()
    if env.world_size == 1:
        return None
    if env.master_addr:
        os.environ["MASTER_ADDR"] = env.master_addr
    if env.master_port:
        os.environ["MASTER_PORT"] = str(env.master_port)
    dist.init_process_group(resolve_backend(backend, device), rank=env.rank,
                            world_size=env.world_size, timeout=timedelta(seconds=timeout_s))
    return Comm(timing=timing)
