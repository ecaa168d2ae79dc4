"""Logs that give no energy are named, never dropped in silence; bad flags are one line naming
the flag before anything is written; ``sample`` checks everything before it creates anything
(review issues 23-28). Logs are the real tool formats (the NVML fixture of the sampler)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from phantom_parallel.energy import table
from phantom_parallel.energy.cli import main
from phantom_parallel.energy.integrate import device_energy
from phantom_parallel.energy.records import Sample
from phantom_parallel.energy.sampler import start_sampler
from phantom_parallel.energy.sources import SourceError

from .conftest import FIXTURES

S = 10**9
T0 = 1741101302
#: The NVML fixture: device 0 at 350 W from T0 to T0 + 4.
NVML = (FIXTURES / "node1.nvml.log").read_text()


def _run(tmp_path: Path, hosts: tuple[str, ...] = ("n1",), config: dict | None = None) -> Path:
    """A run folder measured from T0 + 1 to T0 + 4 (3 s), one rank per host."""
    run = tmp_path / "run"
    (run / "power").mkdir(parents=True)
    events = [(T0, "run_start"), (T0 + 1, "measure_start"), (T0 + 4, "measure_end")]
    (run / "events.jsonl").write_text(
        "".join(json.dumps({"t_ns": t * S, "event": e, "host": "n1"}) + "\n" for t, e in events)
    )
    manifest = {"world_size": len(hosts), "hosts": list(hosts), "config": config or {}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def _shifted(text: str, by_s: int) -> str:
    """The NVML log with every ``t_ns`` moved by ``by_s`` seconds."""
    lines = text.splitlines()
    rows = [line.split(",", 1) for line in lines[1:]]
    return "\n".join([lines[0], *(f"{int(t) + by_s * S},{rest}" for t, rest in rows)]) + "\n"


def _meta(run: Path, log: str, fmt: str = "nvml-csv") -> None:
    meta = {"host": "n1", "source": "nvml", "log": log, "log_format": fmt, "interval_s": 1.0}
    (run / "power" / "n1.sampler.json").write_text(json.dumps(meta))


# -- issue 23: every unusable log is named, with why, in the output and in energy.json


@pytest.mark.parametrize(
    ("name", "text", "meta", "why"),
    [
        ("n1.log", "foo,bar\n1,2\n", False, "cannot recognise the log format"),
        ("n1.log", "", False, "empty file (0 bytes)"),
        ("n1.nvml.log", "foo,bar\n1,2\n", True, "no readings as nvml-csv"),
        ("n1.nvml.log", None, True, "listed as the log in n1.sampler.json but missing"),
    ],
    ids=["broken-header", "empty", "sampler-json-broken-header", "sampler-json-missing-log"],
)
def test_unusable_log_is_named_with_why_and_the_model_says_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str | None,
    meta: bool,
    why: str,
) -> None:
    run = _run(tmp_path)
    log = run / "power" / name
    if text is not None:
        log.write_text(text)
    if meta:
        _meta(run, name)
    assert main(["extract", "--run-dir", str(run), "--busy-watts", "10"]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["method"] == "model" and rep["total_j"] == pytest.approx(30.0)
    named = [w for w in rep["warnings"] if w.startswith(f"{log}: skipped: ") and why in w]
    assert len(named) == 1, rep["warnings"]
    assert why in rep["logs"][str(log)]["unusable"]
    reason = f"no power log with samples in the measured window (skipped: {log})"
    assert rep["warnings"][0] == f"energy is MODELLED, not measured: {reason}"
    out = capsys.readouterr()
    assert "MODELLED" in out.out and f"warning: {named[0]}" in out.err


def test_unusable_log_beside_a_good_one_is_named_and_the_good_one_measured(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, ("n1", "n2"))
    (run / "power" / "n1.nvml.log").write_text(NVML)
    (run / "power" / "n2.nvml.log").write_text("")
    assert main(["extract", "--run-dir", str(run)]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["method"] == "counter" and rep["total_j"] == pytest.approx(1050.0)
    assert f"{run / 'power' / 'n2.nvml.log'}: skipped: empty file (0 bytes)" in rep["warnings"]


# -- issue 24: a device with no reading in the window is not measured 0 J


def test_log_outside_the_window_is_not_measured_zero_joules(tmp_path: Path) -> None:
    run = _run(tmp_path)
    log = run / "power" / "n1.nvml.log"
    log.write_text(_shifted(NVML, -1000))
    assert main(["extract", "--run-dir", str(run), "--busy-watts", "10"]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["method"] == "model" and rep["total_j"] == pytest.approx(30.0)
    assert any(
        w.startswith(f"{log}: skipped: no usable reading inside the measured window")
        and "readings from 2025-03-04T14:58:22.000Z" in w
        for w in rep["warnings"]
    ), rep["warnings"]
    assert "no usable reading" in rep["logs"][str(log)]["unusable"]


def test_host_whose_log_misses_the_window_is_left_out_and_named(tmp_path: Path) -> None:
    run = _run(tmp_path, ("n1", "n2"))
    (run / "power" / "n1.nvml.log").write_text(NVML)
    (run / "power" / "n2.nvml.log").write_text(_shifted(NVML, 1000))
    assert main(["extract", "--run-dir", str(run)]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["total_j"] == pytest.approx(1050.0) and rep["unmeasured_devices"] == ["n2/0"]
    row = next(d for d in rep["devices"] if d["host"] == "n2")
    assert row["method"] == "none" and row["flagged"] and row["coverage"] == 0.0
    assert any("leaves out 1 counted device" in w and "n2/0" in w for w in rep["warnings"])


def test_device_energy_of_readings_outside_the_window_is_none_not_zero() -> None:
    before = [Sample((T0 + k) * S, "0", 350.0, 100.0 + 350 * k) for k in range(4)]
    de = device_energy("0", before, (T0 + 10) * S, (T0 + 13) * S, 1.0)
    assert de.method == "none" and de.integration_j is None and de.counter_j is None
    assert "its readings are from 2025-03-04T15:15:02.000Z" in de.warnings[0]
    # a reading on the window's start edge only touches it: nothing measured either
    de = device_energy("0", before, (T0 + 3) * S, (T0 + 6) * S, 1.0)
    assert de.method == "none"
    # readings on both sides of the window: the gap is bridged (coverage 0 %, warned)
    around = [Sample(T0 * S, "0", 350.0, None), Sample((T0 + 20) * S, "0", 350.0, None)]
    de = device_energy("0", around, (T0 + 5) * S, (T0 + 8) * S, 1.0)
    assert de.method == "integration" and de.energy_j == pytest.approx(1050.0)
    assert de.coverage == 0.0 and any("cover 0.0 %" in w for w in de.warnings)


# -- issue 25: the power model's watts


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--busy-watts", "-5", "--idle-watts", "-1"], "--busy-watts -5.0"),
        (["--busy-watts", "nan"], "--busy-watts nan"),
        (["--busy-watts", "inf"], "--busy-watts inf"),
        (["--idle-watts", "-1"], "--idle-watts -1.0"),
        (["--busy-watts", "10", "--idle-watts", "50"], "--idle-watts 50.0: above --busy-watts"),
    ],
)
def test_bad_watts_are_one_line_naming_the_flag_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    run = _run(tmp_path)
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["extract", "--run-dir", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in run.rglob("*")) == before


def test_bad_watts_in_the_run_config_name_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path, config={"energy": {"busy_watts": -3}})
    assert main(["extract", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'manifest.json'}: config.energy.busy_watts -3" in err
    assert not (run / "energy.json").exists()


# -- issue 26: from-logs names the file and why; replacing a previous report is said


def _logdir(tmp_path: Path, text: str) -> Path:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "a.log").write_text(text)
    return logdir


WINDOW = ["--start", str(T0), "--end", str(T0 + 4)]


def test_from_logs_garbage_names_the_file_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, "garbage here\n")
    assert main(["from-logs", str(logdir), *WINDOW]) == 2
    err = capsys.readouterr().err
    assert f"{logdir / 'a.log'}: cannot recognise the log format" in err
    assert len(err.strip().splitlines()) == 1 and not (logdir / "energy.json").exists()


def test_from_logs_wrong_format_names_the_flag_file_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, NVML)
    assert main(["from-logs", str(logdir), "--format", "rapl-csv", *WINDOW]) == 2
    err = capsys.readouterr().err
    assert "(read as --format rapl-csv)" in err
    assert f"{logdir / 'a.log'}: no readings as rapl-csv (" in err and "garbage" in err
    assert len(err.strip().splitlines()) == 1 and not (logdir / "energy.json").exists()


def test_from_logs_says_it_replaced_the_previous_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = _logdir(tmp_path, NVML)
    assert main(["from-logs", str(logdir), *WINDOW]) == 0
    assert "replaced" not in capsys.readouterr().out
    assert main(["from-logs", str(logdir), "--start", str(T0 + 1), "--end", str(T0 + 4)]) == 0
    assert "(replaced the previous energy.json, energy.csv)" in capsys.readouterr().out
    assert json.loads((logdir / "energy.json").read_text())["total_j"] == pytest.approx(1050.0)


def test_report_files_are_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logdir = _logdir(tmp_path, NVML)
    assert main(["from-logs", str(logdir), *WINDOW]) == 0
    old = {p.name: p.read_bytes() for p in logdir.glob("energy.*")}

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(table, "_write_csv", fail)
    assert main(["from-logs", str(logdir), "--start", str(T0 + 1), "--end", str(T0 + 4)]) == 2
    assert {p.name: p.read_bytes() for p in logdir.glob("energy.*")} == old
    assert sorted(p.name for p in logdir.iterdir()) == ["a.log", "energy.csv", "energy.json"]


@pytest.mark.parametrize("command", ["extract", "from-logs"])
def test_out_that_cannot_be_created_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (tmp_path / "notdir").write_text("")
    src = (
        ["--run-dir", str(_run(tmp_path))]
        if command == "extract"
        else [
            str(_logdir(tmp_path, NVML)),
            *WINDOW,
        ]
    )
    assert main([command, *src, "--out", str(tmp_path / "notdir" / "o")]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'notdir' / 'o'}: cannot be created" in err and "Errno" not in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("out", ["/proc", "/proc/o"])
def test_out_where_nothing_can_be_created_is_refused_whatever_its_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    """/proc passes a permission-bit check for root: the check creates (and removes) an entry."""
    assert main(["extract", "--run-dir", str(_run(tmp_path)), "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: " in err and "/proc is not writable" in err
    assert len(err.strip().splitlines()) == 1


# -- issues 27, 28: sample checks everything before it creates anything


@pytest.fixture
def no_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "nvml", "--", "true"], "--source nvml: pynvml"),
        (["--power-interval-ms", "0", "--", "true"], "--power-interval-ms 0.0"),
        (["--power-interval-ms", "nan", "--", "true"], "--power-interval-ms nan"),
        (["--"], "give the command to run after --"),
        ([], "give the command to run after --"),
        (["--", "no-such-command-xyz"], "command 'no-such-command-xyz': not found"),
    ],
)
def test_sample_bad_input_creates_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_pynvml: None,
    argv: list[str],
    message: str,
) -> None:
    out = tmp_path / "o"
    assert main(["sample", "--source", "none", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_sample_out_under_a_file_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notdir").write_text("")
    out = tmp_path / "notdir" / "o"
    assert main(["sample", "--source", "none", "--out", str(out), "--", "true"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: cannot be created" in err and "Errno" not in err


def test_sample_refuses_a_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert main(["sample", "--source", "none", "--out", str(out), "--", "true"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["sample", "--source", "none", "--out", str(out), "--", "true"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: exists and is not empty" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert len((out / "events.jsonl").read_text().splitlines()) == 4


def test_sample_into_an_existing_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    code = "import sys; sys.exit(3)"
    assert (
        main(["sample", "--source", "none", "--out", str(out), "--", sys.executable, "-c", code])
        == 3
    )
    assert json.loads((out / "manifest.json").read_text())["command"][1:] == ["-c", code]


def test_sampler_whose_source_fails_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no RAPL zones"):
        start_sampler("rapl", tmp_path / "power", 0.1, powercap_root=str(tmp_path / "none"))
    assert not (tmp_path / "power").exists()
    with pytest.raises(ValueError, match="finite"):
        start_sampler("none", tmp_path / "power", float(np.nan))
