"""phantom-energy CLI: modelled energy, user-recorded logs, bad input, sample."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from phantom_parallel.energy.cli import main

from .conftest import FIXTURES

S = 10**9
T0 = 1741101302


def _run_dir(tmp_path: Path, events: list[tuple[float, str, int | None]]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "events.jsonl", "w") as f:
        for t, name, ep in events:
            f.write(
                json.dumps(
                    {"t_ns": int(t * S), "event": name, "epoch": ep, "step": 0, "host": "n1"}
                )
                + "\n"
            )
    (run / "manifest.json").write_text(
        json.dumps(
            {"world_size": 4, "hosts": ["n1", "n2"], "config": {"batch_size": 32, "device": "cpu"}}
        )
    )
    (run / "metrics.csv").write_text(
        "step,epoch,loss,step_time_s,samples_per_s,t_ns\n"
        + "".join(f"{i},0,1.0,1.0,32.0,{(T0 + 1 + i) * S}\n" for i in range(3))
    )
    return run


EVENTS = [
    (T0, "run_start", None),
    (T0 + 1, "measure_start", None),
    (T0 + 1, "epoch_start", 0),
    (T0 + 4, "epoch_end", 0),
    (T0 + 4, "measure_end", None),
    (T0 + 6, "run_end", None),
]


def test_extract_models_energy_without_sensor(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, EVENTS)
    assert main(["extract", "--run-dir", str(run), "--busy-watts", "50", "--idle-watts", "10"]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["method"] == "model" and rep["source"] == "model"
    assert rep["total_j"] == pytest.approx(50 * 3 * 4)
    assert rep["per_node_j"] == {"n1": pytest.approx(300.0), "n2": pytest.approx(300.0)}
    assert rep["per_epoch_j"] == {"0": pytest.approx(600.0)}
    assert rep["j_per_step"] == pytest.approx(200.0) and rep["j_per_sample"] == pytest.approx(
        600 / 96
    )
    assert rep["model_idle_outside_window_j"] == pytest.approx(10 * 4 * 3)
    assert any("MODELLED" in w for w in rep["warnings"])
    rows = (run / "energy.csv").read_text().splitlines()
    assert all(",model," in r for r in rows[1:])


def test_extract_measured_from_fixture_log_and_resumes(tmp_path: Path) -> None:
    events = [
        (T0, "run_start", None),
        (T0, "measure_start", None),
        (T0, "epoch_start", 0),
        (T0 + 1, "epoch_end", 0),
        (T0 + 1.5, "resume", None),
        (T0 + 2, "measure_start", None),
        (T0 + 4, "measure_end", None),
    ]
    run = _run_dir(tmp_path, events)
    (run / "power").mkdir()
    shutil.copy(FIXTURES / "rocm6_text.log", run / "power" / "n1.rocm-smi.log")
    assert main(["extract", "--run-dir", str(run)]) == 0
    rep = json.loads((run / "energy.json").read_text())
    # two windows: [T0, T0+1] (killed: closed at its last event) and [T0+2, T0+4], 200 W
    assert rep["method"] == "counter" and rep["total_j"] == pytest.approx(600.0)
    assert rep["window_s"] == pytest.approx(3.0)
    assert rep["gcds_used_per_package"] == {"n1": {"0": 2}}
    assert any("no measure_end" in w for w in rep["warnings"])


def test_from_logs_with_start_end(tmp_path: Path) -> None:
    logdir = tmp_path / "frontier"
    logdir.mkdir()
    shutil.copy(FIXTURES / "rocm5_text.log", logdir / "node7.txt")
    rc = main(
        [
            "from-logs",
            str(logdir),
            "--format",
            "rocm-smi-text",
            "--start",
            "2025-03-04T10:15:02-05:00",
            "--end",
            "2025-03-04T15:15:06Z",
        ]
    )
    assert rc == 0
    rep = json.loads((logdir / "energy.json").read_text())
    assert rep["total_j"] == pytest.approx(924.0) and rep["per_node_j"] == {
        "node7": pytest.approx(924.0)
    }


def test_from_logs_with_events_and_sniffing(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    shutil.copy(FIXTURES / "amdsmi62_watch.csv.log", logdir / "a.log")
    shutil.copy(FIXTURES / "node1.nvml.log", logdir / "b.log")
    ev = tmp_path / "events.jsonl"
    ev.write_text(
        json.dumps({"t_ns": T0 * S, "event": "measure_start"})
        + "\n"
        + json.dumps({"t_ns": (T0 + 4) * S, "event": "measure_end"})
        + "\n"
    )
    assert main(["from-logs", str(logdir), "--events", str(ev), "--out", str(tmp_path / "o")]) == 0
    rep = json.loads((tmp_path / "o" / "energy.json").read_text())
    assert rep["per_node_j"] == {"a": pytest.approx(1600.0, rel=1e-5), "b": pytest.approx(1400.0)}


def test_bad_events_file_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text('{"t_ns": 1, "event": "run_start"}\nnot json\n')
    assert main(["extract", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'events.jsonl'}:2" in err


def test_from_logs_needs_a_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["from-logs", str(tmp_path)]) == 2
    assert "--start and --end" in capsys.readouterr().err


def test_sample_runs_a_command(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert (
        main(["sample", "--source", "none", "--out", str(out), "--", sys.executable, "-c", "pass"])
        == 0
    )
    names = [json.loads(x)["event"] for x in (out / "events.jsonl").read_text().splitlines()]
    assert names == ["run_start", "measure_start", "measure_end", "run_end"]
    assert main(["extract", "--run-dir", str(out)]) == 0
    assert json.loads((out / "energy.json").read_text())["method"] == "model"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--start", "yesterday", "--end", "2025-03-04T15:15:06Z"], "--start 'yesterday'"),
        (["--start", "2025-03-04T15:15:02Z", "--end", "soon"], "--end 'soon'"),
        (["--start", "yesterday"], "--start 'yesterday'"),
        (["--events", "e.jsonl", "--interval", "-1"], "--interval -1"),
        (["--events", "e.jsonl", "--power-interval-ms", "0"], "--power-interval-ms 0.0"),
    ],
)
def test_from_logs_bad_flag_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    assert main(["from-logs", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_poll_interval_is_in_ms_as_for_the_other_scripts() -> None:
    """``--power-interval-ms`` (the trainer's name and unit) sets the interval in both
    subcommands; the older ``--interval`` in seconds still works."""
    from phantom_parallel.energy.cli import _interval_s, build_parser

    parse = build_parser().parse_args
    assert _interval_s(parse(["from-logs", "d", "--power-interval-ms", "3000"])) == 3.0
    assert _interval_s(parse(["from-logs", "d", "--interval", "3"])) == 3.0
    assert _interval_s(parse(["from-logs", "d"])) is None
    assert _interval_s(parse(["sample", "--out", "o"])) == 0.1
