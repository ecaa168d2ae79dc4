"""``phantom-energy``: energy of a run, of user-recorded logs, or of a command.

phantom-energy extract --run-dir RUN [--busy-watts W] [--idle-watts W] [--out DIR]
phantom-energy from-logs LOGDIR [--format FMT] (--start T --end T | --events FILE)
                         [--glob PATTERN] [--power-interval-ms MS] [--out DIR]
phantom-energy sample [--source auto] [--power-interval-ms 100] --out DIR -- CMD ...
phantom-energy formats

Bad input is a one-line error naming the flag or file (exit 2) before anything is written;
``sample`` wants a new or empty ``--out``. A log that gives no energy is skipped with a
warning naming it; modelled energy is always labelled MODELLED.

The poll interval is ``--power-interval-ms`` (milliseconds), as for phantom-train and
phantom-infer; the older ``--interval`` (seconds) is still accepted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path, PurePath
from typing import Any

from phantom_parallel import cli
from phantom_parallel.atomic import write_json_atomic

from . import checks
from .formats import FORMATS, FormatError
from .report import LogInput, Work, measure_logs, write_report
from .run_folder import InputError, extract
from .sampler import host_name, start_sampler
from .sources import SOURCES, SourceError
from .timestamps import OUT_OF_RANGE, parse_time_arg
from .windows import EventsError, windows_from_events, windows_from_file


def _time_flag(flag: str, text: str) -> int:
    """A CLI time in ns; :class:`InputError` naming ``flag`` when it is not a time."""
    try:
        return parse_time_arg(text)
    except ValueError as exc:
        if str(exc) == OUT_OF_RANGE:
            raise InputError(f"{flag} {text!r}: {OUT_OF_RANGE}") from None
        raise InputError(
            f"{flag} {text!r} is not a time: give ISO 8601 (2025-03-04T10:15:02Z), "
            "epoch seconds (1741101302.5) or <int>ns"
        ) from None


def _interval_s(args: argparse.Namespace) -> float | None:
    """The poll interval in seconds from ``--power-interval-ms`` (or the older ``--interval``
    in seconds); :class:`InputError` naming the flag when it is not a finite number > 0."""
    if args.interval is not None:
        return checks.positive("--interval", args.interval, "s")
    if args.power_interval_ms is None:
        return None
    return checks.positive("--power-interval-ms", args.power_interval_ms, "ms") / 1e3


def _glob(pattern: str) -> str:
    """``--glob``: a non-empty pattern of paths inside LOGDIR (not absolute, no ``..``)."""
    if not pattern.strip():
        raise InputError(f"--glob {pattern!r}: empty; give a pattern of files in LOGDIR ('*.log')")
    parts = PurePath(pattern).parts
    if PurePath(pattern).is_absolute() or PurePath(pattern).drive or ".." in parts:
        raise InputError(f"--glob {pattern!r}: leaves LOGDIR; give a pattern relative to it")
    return pattern


def _events_file(path: Path) -> Path:
    """``--events``: an existing file (a missing path or a folder named with the flag)."""
    if not path.exists():
        raise InputError(f"--events {path}: no such file")
    if path.is_dir():
        raise InputError(f"--events {path}: is a folder, not an events.jsonl file")
    return path


def from_logs(args: argparse.Namespace) -> dict[str, Any]:
    """Energy report of a folder of user-recorded logs over the given window(s)."""
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise InputError(f"{logdir}: not a folder")
    interval_s = _interval_s(args)
    pattern = _glob(args.glob)
    if args.events and (args.start or args.end):
        raise InputError("give --events or --start/--end, not both")
    if args.events:
        windows = windows_from_file(_events_file(args.events))
    elif args.start or args.end:
        a = _time_flag("--start", args.start) if args.start else None
        b = _time_flag("--end", args.end) if args.end else None
        if a is None or b is None:
            raise InputError("give both --start and --end (or --events events.jsonl)")
        if b <= a:
            raise InputError(f"--end {args.end} is not after --start {args.start}")
        windows = windows_from_events(
            [{"t_ns": a, "event": "measure_start"}, {"t_ns": b, "event": "measure_end"}],
            "--start/--end",
        )
    else:
        raise InputError("give the window: --start and --end, or --events events.jsonl")
    skip = (".json", ".csv") if pattern == "*" else ()
    paths = [p for p in sorted(logdir.glob(pattern)) if p.is_file() and not p.name.endswith(skip)]
    if not paths:
        raise InputError(f"{logdir}: no log files matching {args.glob!r}")
    logs = [LogInput(p.name.split(".")[0], p, args.format, "", interval_s) for p in paths]
    got = measure_logs(logs, windows, Work())
    if got.report is None:
        why = "; ".join(f"{path}: {w}" for path, w in got.unusable.items()) or (
            "no counted device (GPU package, accelerator or RAPL zone) in them"
        )
        forced = f" (read as --format {args.format})" if args.format != "auto" else ""
        raise InputError(
            f"{logdir}: no usable reading inside the window in {len(paths)} log(s){forced}: {why}"
        )
    return got.report


def sample(args: argparse.Namespace) -> int:
    """Run a command under the sampler; write OUT/power/, OUT/events.jsonl and
    OUT/manifest.json. Every flag, the command and the source are checked first: on bad
    input nothing is created."""
    out = Path(args.out)
    cmd = checks.command(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
    interval_s = _interval_s(args)
    checks.writable_folder("--out", out, fresh=True)
    host = host_name()
    try:  # resolves the source before it creates OUT/power
        handle = start_sampler(args.source, out / "power", interval_s)
    except SourceError as exc:
        raise InputError(f"--source {args.source}: {exc}") from None
    write_json_atomic(out / "manifest.json", {"world_size": 1, "hosts": [host], "command": cmd})

    def event(name: str) -> None:
        with open(out / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {"t_ns": time.time_ns(), "event": name, "epoch": None, "step": 0, "host": host}
                )
                + "\n"
            )

    print(f"phantom-energy: sampling {handle.source} into {out / 'power'}", file=sys.stderr)
    event("run_start")
    event("measure_start")
    try:
        rc = subprocess.call(cmd)
    finally:
        event("measure_end")
        event("run_end")
        handle.stop()
    return rc


def _print_summary(report: dict[str, Any], paths: tuple[Path, Path], replaced: bool) -> None:
    """One line on stdout (what, total J, window s, mean W, where; MODELLED said so), the
    first 10 warnings on stderr."""
    mp = report.get("mean_power_w")
    what = f"{report['method']} ({report['source']})"
    if report["method"] == "model":
        what += ", MODELLED, not measured"
    again = f" (replaced the previous {paths[0].name}, {paths[1].name})" if replaced else ""
    print(
        f"{what}: total {report['total_j']:.3f} J over {report['window_s']:.3f} s, "
        f"mean {mp if mp is None else round(mp, 3)} W -> {paths[0]}{again}"
    )
    for w in report["warnings"][:10]:
        print(f"warning: {w}", file=sys.stderr)
    if len(report["warnings"]) > 10:
        print(f"warning: ... {len(report['warnings']) - 10} more in {paths[0]}", file=sys.stderr)


def _interval_flags(sub: argparse.ArgumentParser, default_ms: float | None, help_text: str) -> None:
    """``--power-interval-ms`` (the name every console script uses) and the older
    ``--interval`` in seconds (hidden; it wins when given)."""
    sub.add_argument("--power-interval-ms", type=float, default=default_ms, help=help_text)
    sub.add_argument("--interval", type=float, default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``phantom-energy``."""
    ap = cli.parser("phantom-energy", __doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser(
        "extract",
        formatter_class=ap.formatter_class,
        help="energy of a run folder -> RUN/energy.json, energy.csv",
    )
    ex.add_argument("--run-dir", required=True, type=Path)
    ex.add_argument("--busy-watts", type=float, default=None, help="power model: W per busy device")
    ex.add_argument("--idle-watts", type=float, default=None, help="power model: W per idle device")
    ex.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the run folder)"
    )
    fl = sub.add_parser(
        "from-logs",
        formatter_class=ap.formatter_class,
        help="energy of user-recorded logs over a window",
    )
    fl.add_argument("logdir", type=Path)
    fl.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    fl.add_argument(
        "--glob",
        default="*",
        help="which files of LOGDIR: a pattern inside it (default: all but .json/.csv)",
    )
    fl.add_argument("--start", help="window start: ISO 8601, epoch seconds or <int>ns")
    fl.add_argument("--end", help="window end")
    fl.add_argument("--events", type=Path, help="events.jsonl with measure_start/measure_end")
    _interval_flags(
        fl, None, "nominal poll interval of the logs (ms; default: measured from the logs)"
    )
    fl.add_argument("--out", type=Path, default=None, help="output folder (default: LOGDIR)")
    sa = sub.add_parser(
        "sample", formatter_class=ap.formatter_class, help="run a command under the sampler"
    )
    sa.add_argument("--source", default="auto", choices=["auto", *SOURCES])
    _interval_flags(sa, 100.0, "sampler poll interval (ms)")
    sa.add_argument("--out", required=True, type=Path)
    sa.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("formats", formatter_class=ap.formatter_class, help="list the log formats")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``phantom-energy``."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "formats":
            print("\n".join(FORMATS))
            return 0
        if args.command == "sample":
            return sample(args)
        if args.command == "extract":
            checks.busy_idle(args.busy_watts, args.idle_watts)
            out = args.out or args.run_dir
            checks.writable_folder("--out" if args.out else "--run-dir", out)
            report = extract(args.run_dir, args.busy_watts, args.idle_watts)
        else:
            out = args.out or args.logdir
            checks.writable_folder("--out" if args.out else "LOGDIR", out)
            report = from_logs(args)
        replaced = (Path(out) / "energy.json").exists()
        _print_summary(report, write_report(report, out), replaced)
        return 0
    except (InputError, EventsError, FormatError, SourceError, OSError) as exc:
        print(f"phantom-energy: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
