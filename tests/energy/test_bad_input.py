"""Bad input to ``phantom-energy`` is one line naming the flag, file, key or line (exit 2),
before anything is written; a log line with an impossible time is a named non-data line;
an events file cut off by a killed run keeps its complete lines (audit of the energy tool)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phantom_parallel.energy.cli import main
from phantom_parallel.energy.formats import parse

from .test_unusable_input import NVML, T0, WINDOW, S, _logdir, _meta, _run

HUGE_NS = "1741101302000000000000"  # 1000 x a 2025 time: past int64 ns


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> str:
    """``main(argv)`` exits 2 with one line on stderr that contains ``message``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def _events(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text("\n".join(lines) + end)
    return path


def _ev(t: object, event: str) -> str:
    return json.dumps({"t_ns": t, "event": event, "host": "n1"})


GOOD = [_ev(T0 * S, "run_start"), _ev(T0 * S, "measure_start"), _ev((T0 + 4) * S, "measure_end")]


# -- 1: --glob must name files inside LOGDIR


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "empty"),
        ("/abs/*", "leaves LOGDIR"),
        ("../*", "leaves LOGDIR"),
        ("sub/../../*.log", "leaves LOGDIR"),
    ],
)
def test_glob_empty_absolute_or_outside_logdir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str, why: str
) -> None:
    logdir = _logdir(tmp_path, NVML)
    (tmp_path / "outside.log").write_text(NVML)  # what '../*' would read
    _refused(
        capsys, ["from-logs", str(logdir), *WINDOW, "--glob", pattern], f"--glob {pattern!r}: {why}"
    )
    assert sorted(p.name for p in logdir.iterdir()) == ["a.log"]


# -- 2: times out of range (int64 ns)


def test_log_row_with_a_time_out_of_range_is_a_named_garbage_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = NVML.splitlines()
    logdir = _logdir(tmp_path, "\n".join([lines[0], f"{HUGE_NS},0,100,350000", *lines[1:]]) + "\n")
    assert main(["from-logs", str(logdir), *WINDOW]) == 0
    rep = json.loads((logdir / "energy.json").read_text())
    issue = f"{logdir / 'a.log'}:2: garbage: t_ns out of range"
    assert rep["logs"][str(logdir / "a.log")]["issues"][0].startswith(issue)
    assert rep["total_j"] == pytest.approx(1400.0)
    assert issue in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("nvml-csv", f"t_ns,device,energy_mj,power_mw\n{'9' * 5000},0,1,1\n", 2),
        ("rapl-csv", f"t_ns,zone,name,energy_uj\n{HUGE_NS},intel-rapl:0,package-0,5\n", 2),
        ("rocm-smi-json", f'#@ t_ns={HUGE_NS}\n{{"card0": {{"Energy counter": "5"}}}}\n', 1),
        ("rocm-smi-json", '2025-13-45T10:00:00Z\n{"card0": {"Energy counter": "5"}}\n', 1),
        ("rocm-smi-json", '99999999999.5\n{"card0": {"Energy counter": "5"}}\n', 1),
        ("pm-counters", f"t_ns,counter,content\n{HUGE_NS},energy,5 J 1741101302000000 us\n", 2),
        ("pm-counters", f"t_ns,counter,content\n{T0 * S},energy,5 J {HUGE_NS} us\n", 2),
        (
            "nvidia-smi-csv",
            "timestamp, index, power.draw [W]\n9999/12/31 23:59:59.000, 0, 5 W\n",
            2,
        ),
    ],
)
def test_stamp_out_of_range_is_an_issue_at_its_line_not_a_crash(
    tmp_path: Path, fmt: str, text: str, line: int
) -> None:
    log = tmp_path / "a.log"
    log.write_text(text)
    result = parse(log, fmt)
    assert not result.samples
    assert any(i.line == line and ("range" in i.text or "month" in i.text) for i in result.issues)


@pytest.mark.parametrize("stamp", ["1e400", "1e30"])
def test_amd_smi_time_out_of_range_is_a_lost_poll_not_a_crash(tmp_path: Path, stamp: str) -> None:
    log = tmp_path / "a.log"
    doc = f'[{{"gpu": 0, "timestamp": {stamp}, "power": {{"socket_power": 100}}}}]\n'
    log.write_text(doc)
    result = parse(log, "amd-smi-json")
    assert not result.samples and [i.kind for i in result.issues] == ["lost"]


@pytest.mark.parametrize(
    ("t", "why"),
    [
        (1.5e30, "t_ns out of range"),
        (-5, "t_ns out of range"),
        (True, "t_ns true is not a number of ns"),
        ("1741101302000000000", 't_ns "1741101302000000000" is not a number of ns'),
    ],
)
def test_events_time_out_of_range_or_not_a_number_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], t: object, why: str
) -> None:
    logdir = _logdir(tmp_path, NVML)
    ev = _events(tmp_path / "ev.jsonl", [GOOD[0], _ev(t, "measure_start"), GOOD[2]])
    _refused(capsys, ["from-logs", str(logdir), "--events", str(ev)], f"{ev}:2: {why}")
    assert not (logdir / "energy.json").exists()


def test_events_infinite_time_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, NVML)
    ev = tmp_path / "ev.jsonl"
    ev.write_text(f'{GOOD[0]}\n{GOOD[1]}\n{{"t_ns": 1e400, "event": "measure_end"}}\n')
    _refused(capsys, ["from-logs", str(logdir), "--events", str(ev)], f"{ev}:3: t_ns out of range")


@pytest.mark.parametrize("flag", ["--start", "--end"])
def test_time_flag_out_of_range_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    argv = {"--start": str(T0), "--end": str(T0 + 4)}
    argv[flag] = f"{HUGE_NS}ns"
    logdir = _logdir(tmp_path, NVML)
    flags = [x for k, v in argv.items() for x in (k, v)]
    _refused(capsys, ["from-logs", str(logdir), *flags], f"{flag} '{HUGE_NS}ns': t_ns out of range")


# -- 3: extract on a malformed run folder names the file and key


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"config": "oops"}, "key 'config' is not an object"),
        ({"world_size": "two"}, "key 'world_size' is not a whole number >= 1"),
        ({"config": {"world_size": 0}}, "key 'config.world_size' is not a whole number >= 1"),
        ({"config": {"batch_size": "abc"}}, "key 'config.batch_size' is not a number >= 0"),
        ({"hosts": 5}, "key 'hosts' is not a list of host names"),
        ({"rank_devices": [{"rank": "x"}]}, "key 'rank_devices[0].rank' is not a whole number"),
        ({"rank_devices": ["x"]}, "key 'rank_devices[0]' is not an object"),
    ],
)
def test_malformed_manifest_names_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: dict, message: str
) -> None:
    run = _run(tmp_path)
    (run / "manifest.json").write_text(json.dumps(manifest))
    before = sorted(p.name for p in run.rglob("*"))
    _refused(capsys, ["extract", "--run-dir", str(run)], f"{run / 'manifest.json'}: {message}")
    assert sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"log": 5}, "key 'log' is not a file name"),
        ({"log": "../../x.log"}, "key 'log' is not a file name"),
        ({"log": "n1.nvml.log", "interval_s": "fast"}, "key 'interval_s' is not a number"),
        ({"log": "n1.nvml.log", "interval_s": 0}, "key 'interval_s' is not a number"),
        ({"log": None, "skipped_sources": "x"}, "key 'skipped_sources' is not a list"),
        ({"log": "n1.nvml.log", "device_bus_ids": [1]}, "key 'device_bus_ids' is not an object"),
        ({"log": "n1.nvml.log", "host": 3}, "key 'host' is not a string"),
    ],
)
def test_malformed_sampler_json_names_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], meta: dict, message: str
) -> None:
    run = _run(tmp_path)
    (run / "power" / "n1.nvml.log").write_text(NVML)
    (run / "power" / "n1.sampler.json").write_text(json.dumps(meta))
    meta_path = run / "power" / "n1.sampler.json"
    _refused(capsys, ["extract", "--run-dir", str(run)], f"{meta_path}: {message}")
    assert not (run / "energy.json").exists()


def test_well_formed_sampler_json_still_measures(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run / "power" / "n1.nvml.log").write_text(NVML)
    _meta(run, "n1.nvml.log")
    assert main(["extract", "--run-dir", str(run)]) == 0
    assert json.loads((run / "energy.json").read_text())["total_j"] == pytest.approx(1050.0)


# -- 4, 5: --events and --start/--end; the events file named with its flag


def test_events_and_start_end_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, NVML)
    ev = _events(tmp_path / "ev.jsonl", GOOD)
    argv = ["from-logs", str(logdir), "--events", str(ev), "--start", str(T0), "--end", str(T0 + 1)]
    _refused(capsys, argv, "give --events or --start/--end, not both")
    assert not (logdir / "energy.json").exists()


@pytest.mark.parametrize(
    ("name", "why"), [("nonexist.jsonl", "no such file"), ("folder", "is a folder")]
)
def test_events_missing_or_a_folder_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    logdir = _logdir(tmp_path, NVML)
    (tmp_path / "folder").mkdir()
    ev = tmp_path / name
    err = _refused(capsys, ["from-logs", str(logdir), "--events", str(ev)], f"--events {ev}: {why}")
    assert "Errno" not in err


def test_events_cut_off_last_line_keeps_the_complete_lines_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, NVML)
    ev = _events(tmp_path / "ev.jsonl", [*GOOD, '{"t_ns": 17411'], end="")
    assert main(["from-logs", str(logdir), "--events", str(ev)]) == 0
    warning = f"{ev}:4: last line cut off (no line end, as a killed run leaves it): ignored"
    assert warning in capsys.readouterr().err
    rep = json.loads((logdir / "energy.json").read_text())
    assert rep["total_j"] == pytest.approx(1400.0) and warning in rep["warnings"][0]


def test_events_cut_off_measure_end_closes_the_window_at_the_last_event_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed while writing measure_end is a killed attempt: its window closes at its
    last complete event, as when the line is missing altogether (both warned)."""
    run = _run(tmp_path)
    (run / "power" / "n1.nvml.log").write_text(NVML)
    step = json.dumps({"t_ns": (T0 + 3) * S, "event": "epoch_end", "epoch": 0})
    lines = (run / "events.jsonl").read_text().splitlines()[:2]
    _events(
        run / "events.jsonl", [*lines, step, '{"t_ns": 1741101306000000000, "event": "meas'], ""
    )
    assert main(["extract", "--run-dir", str(run)]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["window_s"] == pytest.approx(2.0) and rep["total_j"] == pytest.approx(700.0)
    assert any(f"{run / 'events.jsonl'}:4: last line cut off" in w for w in rep["warnings"])
    assert any("has no measure_end; closed at" in w for w in rep["warnings"])


@pytest.mark.parametrize("end", ["\n", ""])
def test_events_malformed_line_in_the_middle_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], end: str
) -> None:
    logdir = _logdir(tmp_path, NVML)
    ev = _events(tmp_path / "ev.jsonl", [GOOD[0], '{"t_ns": 17411', *GOOD[1:]], end=end)
    _refused(capsys, ["from-logs", str(logdir), "--events", str(ev)], f"{ev}:2: not an event")


def test_events_complete_last_line_without_line_end_is_used_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, NVML)
    ev = _events(tmp_path / "ev.jsonl", GOOD, end="")
    assert main(["from-logs", str(logdir), "--events", str(ev)]) == 0
    assert "cut off" not in capsys.readouterr().err
    assert json.loads((logdir / "energy.json").read_text())["total_j"] == pytest.approx(1400.0)
