"""Give one job GPUs of its own: lock free device slots, export the visible devices, run the job.

    python workflow/scripts/gpu_slots.py --devices 0,1,2,3 --need 2 --lock-dir DIR -- CMD ARGS...

The local profile's training rule wraps its launch command in this script when the study runs
on GPUs (execution.device cuda, torchrun launcher). ``--devices`` is the pool the workflow saw
at start-up (torch's devices, written as the entries of CUDA_VISIBLE_DEVICES or
HIP_VISIBLE_DEVICES if those were set). Each device has a lock file ``DIR/<device>.lock``; the
job takes an exclusive ``flock`` on ``--need`` free ones (all or none; if fewer are free it
releases them, waits ``--poll`` seconds and tries again), sets ``CUDA_VISIBLE_DEVICES`` and
``HIP_VISIBLE_DEVICES`` to exactly those devices (``ROCR_VISIBLE_DEVICES``, if set, is passed
on unchanged: HIP numbers the devices within it) and replaces itself with CMD. CMD inherits the
locked descriptors, so the devices stay taken until CMD exits or is killed, and the kernel
releases them then: concurrent jobs never share a device, and a killed job leaves no stale
lock. Inside the job, rank r of torchrun uses its device r (local_rank % device_count).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import re
import sys
import time
from pathlib import Path

VISIBLE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="gpu_slots.py",
        description="Lock --need free GPUs of --devices for one job, then exec the command "
        "after '--' with CUDA_VISIBLE_DEVICES/HIP_VISIBLE_DEVICES set to them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--devices", required=True, help="comma-separated device pool")
    p.add_argument("--need", type=int, required=True, help="devices this job takes")
    p.add_argument("--lock-dir", required=True, type=Path, help="folder of the lock files")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between attempts")
    p.add_argument("--timeout", type=float, default=None,
                   help="give up after this many seconds (default: wait)")
    if "--" not in argv:
        p.error("no command: put it after '--'")
    i = argv.index("--")
    args, cmd = p.parse_args(argv[:i]), argv[i + 1:]
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if len(set(devices)) != len(devices) or not devices:
        p.error(f"--devices {args.devices!r}: give distinct, non-empty device names")
    if not 1 <= args.need <= len(devices):
        p.error(f"--need {args.need}: the pool has {len(devices)} device(s) ({args.devices})")
    if not cmd:
        p.error("no command after '--'")
    args.devices = devices
    return args, cmd


def _lock_name(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock"


def try_acquire(devices: list[str], need: int, lock_dir: Path) -> tuple[list[str], list[int]]:
    """Lock ``need`` free devices (all or none): their names and the open, locked descriptors."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    taken: list[str] = []
    fds: list[int] = []
    for device in devices:
        fd = os.open(lock_dir / _lock_name(device), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        taken.append(device)
        fds.append(fd)
        if len(taken) == need:
            return taken, fds
    for fd in fds:
        os.close(fd)  # closing the only descriptor releases the lock
    return [], []


def acquire(devices: list[str], need: int, lock_dir: Path, poll: float,
            timeout: float | None) -> tuple[list[str], list[int]]:
    start = time.monotonic()
    said = False
    while True:
        taken, fds = try_acquire(devices, need, lock_dir)
        if taken:
            return taken, fds
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"gpu_slots: {need} free device(s) of {','.join(devices)} not "
                               f"available within {timeout} s (locks in {lock_dir})")
        if not said:
            print(f"gpu_slots: waiting for {need} free device(s) of {','.join(devices)}",
                  file=sys.stderr, flush=True)
            said = True
        time.sleep(poll * (0.5 + random.random()))


def main(argv: list[str] | None = None) -> None:
    args, cmd = _parse(sys.argv[1:] if argv is None else argv)
    try:
        taken, fds = acquire(args.devices, args.need, args.lock_dir, args.poll, args.timeout)
    except TimeoutError as e:
        sys.exit(str(e))
    visible = ",".join(taken)
    for name in VISIBLE_VARS:
        os.environ[name] = visible
    for fd in fds:
        os.set_inheritable(fd, True)  # the command holds the locks until it exits
    print(f"gpu_slots: devices {visible} ({', '.join(VISIBLE_VARS)})", file=sys.stderr, flush=True)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.exit(f"gpu_slots: cannot run {cmd[0]!r}: {e}")


if __name__ == "__main__":
    main()
