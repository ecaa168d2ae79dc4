"""Bad input to the benchmark scripts: one line naming the flag or file, before any work, and
nothing of the user's replaced."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from phantom_parallel.data import DataConfig, generate
from tests.scripts import load_script


def _one_line_error(capsys, call, *words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    for w in words:
        assert w in err[-1], (w, err[-1])


def test_compute_after_collectives_refuses_a_bad_layout_before_spawning_ranks(capsys) -> None:  # type: ignore[no-untyped-def]
    mod = load_script("benchmarks/compute_after_collectives.py")
    _one_line_error(capsys, lambda: mod.main(["--strategy", "pp", "--width", "64", "--ghosts", "1000"]),
                    "--strategy/--width/--ghosts", "k=1000")


def test_task_hardness_keeps_a_dataset_of_another_configuration(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    mod = load_script("benchmarks/task_hardness.py")
    data = tmp_path / "data"
    generate(DataConfig(teacher_width=32, n_train=64, n_val=16, shard_rows=64), data)
    before = {f.name: f.read_bytes() for f in data.iterdir()}
    _one_line_error(capsys, lambda: mod.main(["--data", str(data), "--n-train", "128", "--n-val", "16"]),
                    f"--data {data}", "different configuration", "--overwrite")
    assert {f.name: f.read_bytes() for f in data.iterdir()} == before
    _one_line_error(capsys, lambda: mod.main(["--data", str(data), "--json", str(tmp_path / "no" / "x.json")]),
                    "--json", "does not exist")


def test_emulate_targets_names_a_file_that_is_not_emulate_output(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    mod = load_script("benchmarks/emulate_targets.py")
    bad = tmp_path / "bad.json"
    bad.write_text('{"config": {}}')
    _one_line_error(capsys, lambda: mod.cli([str(bad)]), str(bad), "not a phantom-emulate JSON")


SHELL_SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").rglob("*.sh"))


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_benchmark_shell_scripts_parse_with_their_embedded_python(script: Path) -> None:
    """The GPU scripts run only on a lent GPU, with minutes of budget: a syntax error in the
    shell or in a Python block fed to it (``<<'PY'`` ... ``PY``) must show here, not there."""
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    text = script.read_text()
    blocks = re.findall(r"<<'PY'\n(.*?)\nPY\n", text, flags=re.S)
    assert len(blocks) == text.count("<<'PY'")  # every block found
    for i, block in enumerate(blocks):
        compile(block, f"{script.name} python block {i + 1}", "exec")


def test_shell_scripts_are_found() -> None:
    assert {p.name for p in SHELL_SCRIPTS} >= {"check.sh", "data_device_and_eager_repeats.sh",
                                                "ledger_repeats.sh", "bench_local.sh"}


STAND_IN_NVIDIA_SMI = '''#!{python}
"""Stand-in nvidia-smi: one GPU drawing 100 W, for the queries check.sh and the sampler make."""
import sys, time
args = " ".join(sys.argv[1:])
if "timestamp,index,power.draw" in args:  # the sampler's poll (format nvidia-smi-csv)
    t = time.time()
    print("timestamp, index, power.draw [W]")
    print(time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t)) + f".{{int(t % 1 * 1000):03d}}, 0, 100.00 W")
elif "power.draw" in args:
    print("100.00 W")
elif "--query-gpu=name" in args:
    print("name, driver_version, memory.total [MiB], power.limit [W]")
    print("Stand-in GPU, 0.0, 1 MiB, 100.00 W")
else:
    sys.exit("stand-in nvidia-smi: unknown query " + args)
'''


@pytest.mark.slow
def test_gpu_scripts_run_end_to_end_at_smoke_scale_on_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu/check.sh and data_device_and_eager_repeats.sh with CHECK_SCALE=smoke: every
    part on the CPU at toy sizes (CUDA graph replay skipped), power from a stand-in nvidia-smi.
    A lent GPU gets one call of minutes; this is where a broken script is found instead."""
    root = Path(__file__).resolve().parents[1]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(STAND_IN_NVIDIA_SMI.format(python=sys.executable))
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ['PATH']}",
           "PYTHON": sys.executable, "CHECK_SCALE": "smoke", "OUT": str(tmp_path / "repeats")}
    check = subprocess.run(["bash", str(root / "benchmarks/gpu/check.sh"), str(tmp_path / "check")],
                           capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert "!! failed" not in check.stdout
    assert sorted(p.name for p in (tmp_path / "check").iterdir()) == [
        "check.log", "emulate_bf16.json", "emulate_eager.json", "gemm_table_bfloat16.yaml",
        "gemm_table_float32.yaml", "ledger.json", "serial.json", "summary.txt"]
    summary = (tmp_path / "check" / "summary.txt").read_text()
    assert "energy: device=0" in summary and "method=integration" in summary
    assert "ledger events timing adds" in summary and "p= 64 pp/tp side by side" in summary
    assert "(measured nvidia-smi integration)" in summary
    assert "(CUDA graph replay skipped: --device cpu)" in check.stdout
    repeats = subprocess.run(["bash", str(root / "benchmarks/gpu/data_device_and_eager_repeats.sh")],
                             capture_output=True, text=True, timeout=600,
                             env={**env, "CHECK_RESUME": "1"}, cwd=tmp_path)  # no file yet
    assert repeats.returncode == 0, repeats.stdout[-3000:] + repeats.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "repeats").iterdir()) == [
        "data_device.json", "eager_rep_1.json", "eager_rep_2.json", "eager_rep_3.json"]
    assert '"teacher_equal": true' in (tmp_path / "repeats" / "data_device.json").read_text()
    rep = json.loads((tmp_path / "repeats" / "eager_rep_1.json").read_text())
    assert rep["complete"] is True and rep["ranks_done"] == [64, 256] and "--resume" in rep["command"]
