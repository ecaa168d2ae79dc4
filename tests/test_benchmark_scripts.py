"""Bad input to the benchmark scripts: one line naming the flag or file, before any work, and
nothing of the user's replaced."""

from __future__ import annotations

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
