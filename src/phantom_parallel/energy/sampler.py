"""Background power sampler: one per node, started by the trainer on local rank 0.

>>> handle = start_sampler(source="auto", out_dir=run_dir / "power", interval_s=0.1)
>>> ...  # training
>>> handle.stop()

The sampler is a child process (``python -m phantom_parallel.energy.sampler``) that polls the
source every ``interval_s`` seconds and appends each poll to ``<out_dir>/<host>.<source>.log``,
flushed per poll, so a SIGKILL of either process loses nothing already written. It stops when
:meth:`SamplerHandle.stop` is called (SIGTERM, the current poll is finished first), when it gets
SIGTERM/SIGINT/SIGHUP, or by itself within one interval when its parent process is gone
(``os.getppid()`` changes). ``<out_dir>/<host>.sampler.json`` records the source, log format,
interval, command, start/stop time, pid, the PCI bus id of every device the source reads
(``device_bus_ids``, looked up once before the child starts) and the source's warnings.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from phantom_parallel.atomic import write_json_atomic

from .devices import sampler_bus_ids
from .sources import SOURCES, SourceError, open_source, resolve

#: Seconds :meth:`SamplerHandle.stop` waits for a clean exit before SIGKILL.
STOP_TIMEOUT_S = 15.0


def host_name() -> str:
    """Short host name used in log file names (``frontier01234``)."""
    return socket.gethostname().split(".")[0] or "localhost"


class SamplerHandle:
    """Handle of a running sampler. :meth:`stop` is idempotent."""

    def __init__(
        self,
        source: str,
        out_dir: Path,
        log_path: Path | None,
        meta_path: Path,
        proc: subprocess.Popen[bytes] | None,
        skipped: list[str],
    ) -> None:
        self.source = source
        self.out_dir = out_dir
        self.log_path = log_path
        self.meta_path = meta_path
        self.skipped = skipped
        self._proc = proc
        self._stopped = proc is None

    @property
    def running(self) -> bool:
        """True while the sampler process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the sampler child (``None`` for source ``none``)."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the sampler (finishing the current poll) and wait for it; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        proc = self._proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            meta = json.loads(self.meta_path.read_text())
            meta["stop_ns"] = time.time_ns()
            meta["exit_code"] = proc.returncode
            write_json_atomic(self.meta_path, meta)
        except (OSError, ValueError):
            pass

    def __enter__(self) -> SamplerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sampler(
    source: str = "auto",
    out_dir: str | os.PathLike[str] = "power",
    interval_s: float = 0.1,
    *,
    host: str | None = None,
    powercap_root: str | None = None,
    pm_counters_root: str | None = None,
) -> SamplerHandle:
    """Start the background sampler and return its handle.

    source: ``auto`` (first working of pm_counters, rocm-smi, amd-smi, nvml, nvidia-smi, rapl;
        ``none`` if none works), ``none``, or one of those names (raises :class:`SourceError`
        if it does not work here).
    out_dir: folder of the logs (created once the source works: a source that does not work
        creates nothing); several nodes may share it.
    interval_s: seconds between the starts of two polls (a poll that takes longer, such as a
        ~0.5 s rocm-smi call, is followed at once by the next).
    host: name used in the file names (default: short host name).
    powercap_root: sysfs powercap root for RAPL (default ``/sys/class/powercap``).
    pm_counters_root: Cray pm_counters folder (default ``/sys/cray/pm_counters``).
    """
    if source not in ("auto", *SOURCES):
        raise SourceError(f"unknown source {source!r}; choose auto or one of {', '.join(SOURCES)}")
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be a finite number > 0, got {interval_s}")
    out = Path(out_dir)
    host = host or host_name()
    options = {
        k: v
        for k, v in (("powercap_root", powercap_root), ("pm_counters_root", pm_counters_root))
        if v
    }
    resolved, skipped = resolve(source, **options)  # before anything is created
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / f"{host}.sampler.json"
    meta: dict[str, Any] = {
        "format": "phantom-energy-sampler/1",
        "host": host,
        "requested_source": source,
        "source": resolved,
        "interval_s": interval_s,
        "start_ns": time.time_ns(),
        "skipped_sources": skipped,
        "parent_pid": os.getpid(),
    }
    if resolved == "none":
        meta.update(log=None, log_format=None, command=None, pid=None)
        write_json_atomic(meta_path, meta)
        return SamplerHandle("none", out, None, meta_path, None, skipped)
    src = open_source(resolved, **options)
    log_path = out / f"{host}.{resolved}.log"
    meta.update(
        log=log_path.name,
        log_format=src.fmt,
        command=src.describe(),
        device_bus_ids=sampler_bus_ids(src),
        source_warnings=list(getattr(src, "warnings", [])),
    )
    src.close()
    argv = [
        sys.executable,
        "-m",
        "phantom_parallel.energy.sampler",
        "--source",
        resolved,
        "--log",
        str(log_path),
        "--interval",
        repr(interval_s),
        "--parent-pid",
        str(os.getpid()),
    ]
    if powercap_root:
        argv += ["--powercap-root", powercap_root]
    if pm_counters_root:
        argv += ["--pm-counters-root", pm_counters_root]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True)
    meta["pid"] = proc.pid
    write_json_atomic(meta_path, meta)
    handle = SamplerHandle(resolved, out, log_path, meta_path, proc, skipped)
    atexit.register(handle.stop)
    return handle


class _Stop:
    flag = False

    @classmethod
    def set(cls, *_: object) -> None:
        cls.flag = True


def run_loop(
    source_name: str,
    log_path: Path,
    interval_s: float,
    parent_pid: int | None,
    max_polls: int | None = None,
    **options: Any,
) -> int:
    """Poll ``source_name`` until stopped; append every poll to ``log_path``. Returns polls."""
    src = open_source(source_name, **options)
    polls = 0
    try:
        with open(log_path, "a", encoding="utf-8", newline="") as f:
            if src.header and f.tell() == 0:
                f.write(src.header)
                f.flush()
            next_t = time.monotonic()
            while not _Stop.flag:
                f.write(src.poll())
                f.flush()
                polls += 1
                if max_polls is not None and polls >= max_polls:
                    break
                next_t += interval_s
                while not _Stop.flag:
                    if parent_pid is not None and os.getppid() != parent_pid:
                        return polls  # parent died: we were re-parented
                    left = next_t - time.monotonic()
                    if left <= 0:
                        if left < -interval_s:  # a slow poll: do not try to catch up
                            next_t = time.monotonic()
                        break
                    time.sleep(min(left, 0.05))
    finally:
        src.close()
    return polls


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sampler child process."""
    ap = argparse.ArgumentParser(prog="python -m phantom_parallel.energy.sampler")
    ap.add_argument("--source", required=True, choices=[s for s in SOURCES if s != "none"])
    ap.add_argument("--log", required=True, type=Path)
    ap.add_argument("--interval", required=True, type=float)
    ap.add_argument("--parent-pid", type=int, default=None)
    ap.add_argument("--powercap-root", default=None)
    ap.add_argument("--pm-counters-root", default=None)
    ap.add_argument("--max-polls", type=int, default=None)
    args = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _Stop.set)
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        return 0
    options = {
        k: v
        for k, v in (
            ("powercap_root", args.powercap_root),
            ("pm_counters_root", args.pm_counters_root),
        )
        if v
    }
    try:
        run_loop(args.source, args.log, args.interval, args.parent_pid, args.max_polls, **options)
    except SourceError as exc:
        print(f"phantom-energy sampler: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
