"""``phantom-infer``: forward-only measurement on 2 gloo ranks, bad input, energy windows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phantom_parallel.emulate_energy import EnergyMeter
from phantom_parallel.energy.sources import RAPL_HEADER
from phantom_parallel.infer import _node_energy

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
KEYS = {"strategy", "p", "n", "k", "batch", "latency_s", "throughput_samples_per_s",
        "energy_j_per_sample", "energy_method"}


def infer_cmd(*args: str, p: int = 2) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={p}"] if p > 1 else [sys.executable]
    return [*launcher, "-m", "phantom_parallel.infer", "--width", "32", "--layers", "2",
            "--d-in", "8", "--d-out", "2", "--steps", "10", "--warmup", "2", "--threads", "1",
            "--power-source", "none", *args]


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=240, check=False)


@pytest.mark.parametrize(("strategy", "extra"), [("tp", ()), ("pp", ("--ghosts", "3")), ("fsdp", ())])
def test_two_ranks_report_latency_and_throughput(tmp_path: Path, strategy: str, extra) -> None:
    out = tmp_path / "infer.json"
    res = run(infer_cmd("--strategy", strategy, "--batch-size", "16", "--json", str(out), *extra))
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    assert result.keys() >= KEYS
    assert (result["strategy"], result["p"], result["n"], result["batch"]) == (strategy, 2, 32, 16)
    assert result["k"] == (3 if strategy == "pp" else None)
    assert result["latency_s"] > 0
    # back-to-back window: throughput cannot beat batch / median latency by much
    assert 0 < result["throughput_samples_per_s"] <= 1.5 * 16 / result["latency_s"]
    assert result["energy_j_per_sample"] is None
    assert result["energy_method"].startswith("none")
    assert json.loads(res.stdout[res.stdout.index("{"):]) == result  # printed on rank 0 only once


@pytest.mark.parametrize(("args", "p", "message"), [
    (("--strategy", "pp", "--ghosts", "17"), 2, "--ghosts=17 must satisfy 1 <= k <= m"),
    (("--strategy", "tp", "--width", "33"), 2, "--width=33 is not divisible"),
    (("--strategy", "fsdp", "--batch-size", "15"), 2, "--batch-size=15 is not divisible"),
    (("--strategy", "serial", "--steps", "0"), 1, "--steps=0 must be >= 1"),
    (("--strategy", "serial", "--warmup", "-1"), 1, "--warmup=-1 must be >= 0"),
    (("--strategy", "pp"), 1, "--strategy=pp needs --ghosts k"),
    (("--strategy", "serial", "--timeout-s", "0"), 1, "--timeout-s=0.0 must be > 0"),
    (("--strategy", "tp", "--threads", "-1"), 2, "--threads=-1 must be >= 1"),
    (("--strategy", "serial", "--seed", "-1"), 1, "--seed=-1 must be >= 0"),
    (("--strategy", "serial", "--ghosts", "-3"), 1, "--ghosts=-3 must be >= 1"),
])
def test_bad_input_is_one_line_naming_the_flag(tmp_path: Path, args, p: int, message: str) -> None:
    out = tmp_path / "infer.json"
    res = run(infer_cmd(*args, "--json", str(out), p=p))
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.startswith("phantom-infer: error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr  # said once, also on 2 ranks
    assert "phantom_parallel/" not in res.stderr  # no rank's traceback (torchrun has its own)
    assert not out.exists()


@pytest.mark.parametrize(("text", "message"), [
    ("{bad", "manifest.json: not valid JSON"),
    ("[1, 2]", "manifest.json: not a JSON object"),
    ('{"format": "x"}', "manifest.json: format 'x' is not 'phantom-data/1'"),
])
def test_a_bad_data_manifest_is_one_line_naming_the_file(tmp_path: Path, text: str,
                                                         message: str) -> None:
    """Read as phantom-train reads it (the data package's manifest loader)."""
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text(text)
    res = run(infer_cmd("--strategy", "serial", "--data", str(tmp_path / "ds"), p=1))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"phantom-infer: error: --data={tmp_path / 'ds'}: "
                                 f"{tmp_path / 'ds' / message}")


def test_d_in_and_d_out_that_differ_from_the_data_are_refused(tmp_path: Path) -> None:
    from phantom_parallel.data import DataConfig, generate

    data = tmp_path / "ds"  # d_in 8, d_out 2: as infer_cmd's --d-in/--d-out
    generate(DataConfig(d_in=8, d_out=2, teacher_width=8, teacher_layers=1, teacher_rank=2,
                        n_train=32, n_val=8, shard_rows=32), data)
    res = run(infer_cmd("--strategy", "serial", "--width", "16", "--data", str(data), p=1))
    assert res.returncode == 0, res.stderr
    assert (json.loads(res.stdout)["d_in"], json.loads(res.stdout)["d_out"]) == (8, 2)
    for flag, given, key, theirs in (("--d-in", "10", "d_in", 8), ("--d-out", "3", "d_out", 2)):
        res = run(infer_cmd("--strategy", "serial", "--data", str(data), flag, given, p=1))
        assert res.returncode == 2
        assert res.stderr.strip() == (f"phantom-infer: error: {flag}={given} differs from the "
                                      f"{key}={theirs} of --data={data} (leave {flag} out to use "
                                      "the data's)")


def test_a_power_source_that_does_not_work_is_refused_naming_the_flag(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Before any work (the sampler would raise its SourceError only after the model is built)."""
    from phantom_parallel import infer
    from phantom_parallel.energy import sources

    def broken(name: str, **_: object) -> None:
        raise sources.SourceError("pynvml (nvidia-ml-py) is not installed")

    monkeypatch.setattr(sources, "resolve", broken)
    args = infer.parse_args(["--strategy", "serial", "--width", "8", "--power-source", "nvml"])
    with pytest.raises(SystemExit) as exc:
        infer.validate(args, 1)
    assert exc.value.code == 2
    assert capsys.readouterr().err == ("phantom-infer: error: --power-source nvml: pynvml "
                                       "(nvidia-ml-py) is not installed (use auto or none)\n")


class _FakeHandle:
    source = "rapl"

    def __init__(self, log: Path) -> None:
        self.log_path = log

    def stop(self) -> None:
        pass


def test_node_energy_integrates_the_window(tmp_path: Path) -> None:
    """A RAPL log rising 10 J/s: the [1 s, 3 s] window holds 20 J; no sensor gives null."""
    log = tmp_path / "n1.rapl.log"
    rows = [f"{t * 10**8},intel-rapl:0,package-0,{t * 10**6},{2**40}" for t in range(0, 41)]
    log.write_text(RAPL_HEADER + "\n".join(rows) + "\n")
    meter = EnergyMeter("none", tmp_path, 0.0)
    meter.handle = _FakeHandle(log)
    energy, method = _node_energy(meter, 10**9, 3 * 10**9, None)
    assert energy == pytest.approx(20.0)
    assert method.startswith("measured rapl")
    energy, method = _node_energy(meter, 3 * 10**9, 9 * 10**9, None)  # beyond the log
    assert energy is None and method.startswith("none (")
    assert _node_energy(EnergyMeter("none", tmp_path, 0.0), 0, 1, None) == (
        None, "none (no power sensor)")
