"""``phantom-energy``: energy of a run, of user-recorded logs, or of a command.

phantom-energy extract --run-dir RUN [--busy-watts W] [--idle-watts W] [--out DIR]
phantom-energy from-logs LOGDIR [--format FMT] (--start T --end T | --events FILE)
                         [--power-interval-ms MS] [--out DIR]
phantom-energy sample [--source auto] [--power-interval-ms 100] --out DIR -- CMD ...

The poll interval is ``--power-interval-ms`` (milliseconds), as for phantom-train and
phantom-infer; the older ``--interval`` (seconds) is still accepted.
phantom-energy formats
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from phantom_parallel import cli

from .formats import FORMATS, FormatError
from .ranks import used_devices
from .report import LogInput, Work, measured_report, model_report, write_report
from .sampler import host_name, start_sampler
from .sources import SOURCES, SourceError
from .timestamps import parse_time_arg
from .windows import EventsError, Windows, windows_from_events, windows_from_file


class InputError(ValueError):
    """Bad input to the CLI (the message names the file)."""


def _short(host: str) -> str:
    return host.split(".")[0]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def run_logs(power_dir: Path) -> list[LogInput]:
    """Logs of a run's ``power/`` folder: from ``*.sampler.json``, else ``*.log`` sniffed."""
    logs: list[LogInput] = []
    seen: set[Path] = set()
    for meta_path in sorted(power_dir.glob("*.sampler.json")):
        meta = _load_json(meta_path)
        if not meta.get("log"):
            continue
        path = power_dir / meta["log"]
        seen.add(path)
        if path.exists():
            logs.append(
                LogInput(
                    meta.get("host") or meta_path.name.split(".")[0],
                    path,
                    meta.get("log_format") or "auto",
                    meta.get("source", ""),
                    None,
                    meta.get("interval_s"),
                    dict(meta.get("device_bus_ids") or {}),
                )
            )
    for path in sorted(power_dir.glob("*.log")):
        if path not in seen:
            logs.append(LogInput(path.name.split(".")[0], path))
    return logs


def _work(run_dir: Path, manifest: dict[str, Any], windows: Windows) -> Work:
    cfg = manifest.get("config") or {}
    ws = manifest.get("world_size") or cfg.get("world_size")
    work = Work(world_size=int(ws) if ws else None)
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        return work
    steps, samples = 0, 0.0
    with open(metrics, newline="", encoding="utf-8") as f:
        for no, row in enumerate(csv.DictReader(f), 2):
            try:
                t = int(float(row["t_ns"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{metrics}:{no}: bad t_ns ({exc})") from exc
            if any(a <= t <= b for a, b in windows.measured):
                steps += 1
                try:
                    samples += float(row.get("samples_per_s") or 0) * float(
                        row.get("step_time_s") or 0
                    )
                except ValueError as exc:
                    raise InputError(f"{metrics}:{no}: {exc}") from exc
    work.steps = steps
    bs = cfg.get("batch_size")
    work.samples = float(bs) * steps if bs else (samples or None)
    return work


def _watts(arg: float | None, cfg: dict[str, Any], key: str) -> float | None:
    if arg is not None:
        return arg
    energy_cfg = cfg.get("energy") if isinstance(cfg.get("energy"), dict) else {}
    v = energy_cfg.get(key, cfg.get(f"energy_{key}"))
    return float(v) if v is not None else None


def extract(run_dir: Path, busy_w: float | None, idle_w: float | None) -> dict[str, Any]:
    """Energy report of a run folder (measured if any log has samples, else modelled)."""
    events = run_dir / "events.jsonl"
    if not events.exists():
        raise InputError(f"{events}: missing (the run's events file is the energy clock)")
    windows = windows_from_file(events)
    manifest_path = run_dir / "manifest.json"
    manifest = _load_json(manifest_path) if manifest_path.exists() else {}
    cfg = manifest.get("config") or {}
    work = _work(run_dir, manifest, windows)
    logs = run_logs(run_dir / "power") if (run_dir / "power").is_dir() else []
    used = used_devices(manifest, logs)
    report = measured_report(logs, windows, work, used.per_host, used.warnings) if logs else None
    if report is not None:
        report["device_attribution"] = {"method": used.method, "ranks_per_device": used.ranks}
    if report is None:
        reason = "no power log with samples in the measured window" if logs else "no power logs"
        hosts = list(dict.fromkeys(_short(str(h)) for h in manifest.get("hosts") or [])) or None
        report = model_report(
            windows,
            work,
            _watts(busy_w, cfg, "busy_watts"),
            _watts(idle_w, cfg, "idle_watts"),
            reason,
            hosts,
        )
    report["run_dir"] = str(run_dir)
    return report


def _time_flag(flag: str, text: str) -> int:
    """A CLI time in ns; :class:`InputError` naming ``flag`` when it is not a time."""
    try:
        return parse_time_arg(text)
    except ValueError:
        raise InputError(
            f"{flag} {text!r} is not a time: give ISO 8601 (2025-03-04T10:15:02Z), "
            "epoch seconds (1741101302.5) or <int>ns"
        ) from None


def _interval_s(args: argparse.Namespace) -> float | None:
    """The poll interval in seconds from ``--power-interval-ms`` (or the older ``--interval``
    in seconds); :class:`InputError` naming the flag when it is not > 0."""
    if args.interval is not None:
        if not args.interval > 0:
            raise InputError(f"--interval {args.interval}: must be > 0 s")
        return args.interval
    if args.power_interval_ms is None:
        return None
    if not args.power_interval_ms > 0:
        raise InputError(f"--power-interval-ms {args.power_interval_ms}: must be > 0 ms")
    return args.power_interval_ms / 1e3


def from_logs(args: argparse.Namespace) -> dict[str, Any]:
    """Energy report of a folder of user-recorded logs over the given window(s)."""
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise InputError(f"{logdir}: not a folder")
    interval_s = _interval_s(args)
    if args.events:
        windows = windows_from_file(args.events)
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
    skip = (".json", ".csv") if args.glob == "*" else ()
    paths = [p for p in sorted(logdir.glob(args.glob)) if p.is_file() and not p.name.endswith(skip)]
    if not paths:
        raise InputError(f"{logdir}: no log files matching {args.glob!r}")
    logs = [LogInput(p.name.split(".")[0], p, args.format, "", interval_s) for p in paths]
    report = measured_report(logs, windows, Work())
    if report is None:
        raise InputError(f"{logdir}: no samples inside the window in {len(paths)} log(s)")
    return report


def sample(args: argparse.Namespace) -> int:
    """Run a command under the sampler; write OUT/power/ and OUT/events.jsonl."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise InputError("give the command after --")
    host = host_name()

    def event(name: str) -> None:
        with open(out / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {"t_ns": time.time_ns(), "event": name, "epoch": None, "step": 0, "host": host}
                )
                + "\n"
            )

    handle = start_sampler(args.source, out / "power", _interval_s(args))
    print(f"phantom-energy: sampling {handle.source} into {out / 'power'}", file=sys.stderr)
    event("run_start")
    event("measure_start")
    try:
        rc = subprocess.call(cmd)
    finally:
        event("measure_end")
        event("run_end")
        handle.stop()
    manifest = out / "manifest.json"
    if not manifest.exists():
        manifest.write_text(
            json.dumps({"world_size": 1, "hosts": [host], "command": cmd}, indent=2) + "\n"
        )
    return rc


def _print_summary(report: dict[str, Any], paths: tuple[Path, Path]) -> None:
    mp = report.get("mean_power_w")
    print(
        f"{report['method']} ({report['source']}): total {report['total_j']:.3f} J over "
        f"{report['window_s']:.3f} s, mean {mp if mp is None else round(mp, 3)} W -> {paths[0]}"
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
    ex = sub.add_parser("extract", formatter_class=ap.formatter_class, help="energy of a run folder -> RUN/energy.json, energy.csv")
    ex.add_argument("--run-dir", required=True, type=Path)
    ex.add_argument("--busy-watts", type=float, default=None, help="power model: W per busy device")
    ex.add_argument("--idle-watts", type=float, default=None, help="power model: W per idle device")
    ex.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the run folder)"
    )
    fl = sub.add_parser("from-logs", formatter_class=ap.formatter_class, help="energy of user-recorded logs over a window")
    fl.add_argument("logdir", type=Path)
    fl.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    fl.add_argument(
        "--glob", default="*", help="which files of LOGDIR (default: all but .json/.csv)"
    )
    fl.add_argument("--start", help="window start: ISO 8601, epoch seconds or <int>ns")
    fl.add_argument("--end", help="window end")
    fl.add_argument("--events", type=Path, help="events.jsonl with measure_start/measure_end")
    _interval_flags(fl, None, "nominal poll interval of the logs (ms; default: measured from the logs)")
    fl.add_argument("--out", type=Path, default=None, help="output folder (default: LOGDIR)")
    sa = sub.add_parser("sample", formatter_class=ap.formatter_class, help="run a command under the sampler")
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
            report = extract(args.run_dir, args.busy_watts, args.idle_watts)
            out = args.out or args.run_dir
        else:
            report = from_logs(args)
            out = args.out or args.logdir
        _print_summary(report, write_report(report, out))
        return 0
    except (InputError, EventsError, FormatError, SourceError, OSError) as exc:
        print(f"phantom-energy: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
