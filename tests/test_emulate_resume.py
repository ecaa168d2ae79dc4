"""phantom-emulate keeps what a stopped run measured: --json rewritten after each p with its
energy, --resume to go on from it, and one-line refusals of a file from another measurement."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from phantom_parallel import emulate
from phantom_parallel.emulate_energy import EnergyMeter

ARGV = ["--strategy", "tp", "pp", "--width", "64", "--layers", "2", "--ghosts", "4", "--batch",
        "8", "--ranks", "2", "4", "--steps", "2", "--warmup", "1", "--power-source", "none"]
# no --threads: in process, it would set this test process's thread count


def _stopped_at_p4(out: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run ARGV into ``out``, interrupted while measuring p = 4; the file it leaves."""
    real = emulate.measure

    def stop_at_p4(strategy: str, p: int, *args: object) -> dict:
        if p == 4:
            raise KeyboardInterrupt
        return real(strategy, p, *args)

    with monkeypatch.context() as m:
        m.setattr(emulate, "measure", stop_at_p4)
        with pytest.raises(KeyboardInterrupt):
            emulate.main([*ARGV, "--json", str(out)])
    return json.loads(out.read_text())


def test_a_stopped_run_resumes_keeping_the_p_it_finished(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.json"
    partial = _stopped_at_p4(out, monkeypatch)
    assert partial["complete"] is False and partial["ranks_done"] == [2]
    assert [(r["strategy"], r["p"]) for r in partial["rows"]] == [("tp", 2), ("pp", 2)]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["e.json"]  # no temporary file left
    # the GPU check's summary reads such a file and says it is partial
    check = tmp_path / "check"
    check.mkdir()
    (check / "emulate_eager.json").write_text(out.read_text())
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu" / "summarize.py"),
                          str(check)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": "src"}, cwd=root)
    assert res.returncode == 0, res.stderr
    assert "emulate_eager.json: (stopped before every --ranks was measured" in res.stdout
    shutil.rmtree(check)
    with pytest.raises(SystemExit) as exc:  # the same command without --resume loses nothing
        emulate.main([*ARGV, "--json", str(out)])
    assert exc.value.code == 2 and "holds a stopped run (p = 2 measured): add --resume" in \
        capsys.readouterr().err
    assert json.loads(out.read_text()) == partial
    assert emulate.main([*ARGV, "--json", str(out), "--resume"]) == 0
    assert "--resume keeps p = 2 of" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["ranks_done"] == [2, 4]
    assert [(r["strategy"], r["p"]) for r in doc["rows"]] == [("tp", 2), ("pp", 2), ("tp", 4),
                                                             ("pp", 4)]
    assert doc["rows"][:2] == partial["rows"]  # kept as measured, not measured again
    assert sorted(f.name for f in tmp_path.iterdir()) == ["e.json"]


def test_resume_without_a_file_measures_everything(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert emulate.main([*ARGV, "--json", str(out), "--resume"]) == 0
    assert json.loads(out.read_text())["ranks_done"] == [2, 4]


def test_resume_measures_again_a_p_whose_energy_was_pending(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.json"
    partial = _stopped_at_p4(out, monkeypatch)
    for r in partial["rows"]:
        r["energy_method"] = "pending"  # the run stopped before the sampler's log reached them
    out.write_text(json.dumps(partial))
    assert emulate.main([*ARGV, "--json", str(out), "--resume"]) == 0
    assert "--resume keeps" not in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["ranks_done"] == [2, 4] and all(r["energy_method"] != "pending" for r in doc["rows"])


@pytest.mark.parametrize(("change", "says"), [
    (["--steps", "3"], "was measured with --steps 2, not 3"),
    (["--ranks", "2", "8"], "was measured with --ranks [2, 4], not [2, 8]"),
])
def test_resume_refuses_a_file_of_other_options_in_one_line_leaving_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        change: list[str], says: str) -> None:
    out = tmp_path / "e.json"
    _stopped_at_p4(out, monkeypatch)
    before = out.read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        emulate.main([*ARGV, *change, "--json", str(out), "--resume"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"phantom-emulate: error: --resume: {out} ") and says in err, err
    assert len(err.splitlines()) == 1 and out.read_text() == before


def test_resume_of_a_complete_file_keeps_it_as_it_is(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert emulate.main([*ARGV, "--json", str(out)]) == 0
    before = json.loads(out.read_text())
    assert emulate.main([*ARGV, "--json", str(out), "--resume"]) == 0
    after = json.loads(out.read_text())
    assert after["rows"] == before["rows"] and after["complete"] is True


def test_resume_refuses_a_foreign_file_or_a_missing_file_argument(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.json"
    assert emulate.main([*ARGV, "--json", str(out)]) == 0
    cases = [([*ARGV, "--resume"], "--resume needs --json")]
    other = tmp_path / "other.json"
    other.write_text('{"rows": []}\n')
    cases.append(([*ARGV, "--json", str(other), "--resume"], "is not a resumable phantom-emulate"))
    broken = json.loads(out.read_text())
    broken["host"] = "a string"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    cases.append(([*ARGV, "--json", str(tmp_path / "broken.json"), "--resume"],
                  "is not a resumable phantom-emulate"))
    for i, rows in enumerate(([{"energy_method": "none"}], broken["rows"][:1],
                              broken["rows"][::-1])):  # a row cut, rows missing, out of order
        damaged = json.loads(out.read_text())
        damaged["rows"] = rows
        (tmp_path / f"rows{i}.json").write_text(json.dumps(damaged))
        cases.append(([*ARGV, "--json", str(tmp_path / f"rows{i}.json"), "--resume"],
                      "is not a resumable phantom-emulate file (rows[0]" if i != 1 else
                      "is not a resumable phantom-emulate file (rows[1]"))
    other_device = json.loads(out.read_text())
    other_device.update(complete=False)
    other_device["host"].update(cpu="another CPU", gpu=None)
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(other_device))
    cases.append(([*ARGV, "--json", str(moved), "--resume"], "was measured with device another CPU"))
    for argv, says in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            emulate.main(argv)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and says in err and len(err.splitlines()) == 1, err
    assert json.loads((tmp_path / "rows0.json").read_text())["rows"] == [{"energy_method": "none"}]


def test_a_measured_row_has_exactly_the_documented_fields(tmp_path: Path) -> None:
    """``emulate_step.ROW_KEYS`` (what --resume checks a kept row for) is what a run writes."""
    from phantom_parallel.emulate_step import ROW_KEYS

    out = tmp_path / "e.json"
    assert emulate.main([*ARGV, "--json", str(out)]) == 0
    assert all(set(r) == ROW_KEYS for r in json.loads(out.read_text())["rows"])


def test_energy_meter_settles_the_windows_its_log_has_passed(tmp_path: Path) -> None:
    """settle() integrates a window once the sampler's log has a reading past its end and
    leaves a later one pending for resolve(); the sampler here is a log written by hand."""
    log = tmp_path / "host.nvml.log"
    s = 1_000_000_000
    t = 1_741_101_302 * s
    # 350 W on device 0: the energy counter grows by 350 J per second
    log.write_text("t_ns,device,energy_mj,power_mw\n" + "".join(
        f"{t + i * s // 10},0,{10_000_000 + 35_000 * i},350000\n" for i in range(31)))
    meter = EnergyMeter("none", tmp_path, window_s=1.0)
    meter.handle = types.SimpleNamespace(log_path=log, source="nvml", stop=lambda: None)
    meter.windows = [(t + s // 2, t + 2 * s, 10, "0"), (t + 2 * s, t + 4 * s, 10, "0")]
    rows = [{"energy_j_per_step": None, "energy_method": "pending"} for _ in range(2)]
    meter.settle(rows, wait_s=0)
    assert rows[0]["energy_j_per_step"] == pytest.approx(350 * 1.5 / 10)
    assert rows[0]["energy_method"] == "measured nvml counter"
    assert rows[1]["energy_method"] == "pending" and meter.windows[1] is not None
    with log.open("a") as fh:  # the sampler goes on past the second window
        fh.writelines(f"{t + i * s // 10},0,{10_000_000 + 35_000 * i},350000\n" for i in range(31, 45))
    meter.resolve(rows)
    assert rows[1]["energy_j_per_step"] == pytest.approx(350 * 2.0 / 10)
    assert rows[0]["energy_j_per_step"] == pytest.approx(350 * 1.5 / 10)  # not integrated twice
