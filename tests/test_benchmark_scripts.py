"""Bad input to the benchmark scripts: one line naming the flag or file, before any work, and
nothing of the user's replaced."""

from __future__ import annotations

import re
import subprocess
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
