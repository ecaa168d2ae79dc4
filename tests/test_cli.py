"""One convention across the console scripts: --version, defaults in --help, one name per
concept (--batch-size, --ranks; the older spellings still accepted), and the shared checks of
``phantom_parallel.cli``: output files refused up front in one line naming the flag and written
atomically, numeric minimums, power sources, the once-per-node refusal under a launcher."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from phantom_parallel import __version__, cli

SCRIPTS = {  # console script -> module (pyproject.toml [project.scripts])
    "phantom-data": "phantom_parallel.data",
    "phantom-train": "phantom_parallel.train",
    "phantom-bench": "phantom_parallel.bench",
    "phantom-costs": "phantom_parallel.costs_cli",
    "phantom-emulate": "phantom_parallel.emulate",
    "phantom-infer": "phantom_parallel.infer",
    "phantom-energy": "phantom_parallel.energy.cli",
}


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c`` calls the module's ``main`` exactly as the console script does."""
    code = f"import sys; from {module} import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_console_script_is_listed() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = {k: v.split(":")[0] for k, v in pyproject["project"]["scripts"].items()}
    assert declared == SCRIPTS


@pytest.mark.parametrize(("prog", "module"), sorted(SCRIPTS.items()))
def test_version(prog: str, module: str) -> None:
    res = _run(module, "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"{prog} {__version__}"


@pytest.mark.parametrize("module", ["phantom_parallel.train", "phantom_parallel.bench",
                                    "phantom_parallel.costs_cli", "phantom_parallel.emulate",
                                    "phantom_parallel.infer"])
def test_batch_is_batch_size_with_its_default_shown(module: str) -> None:
    text = _run(module, "--help").stdout
    assert "--batch-size" in text and "(default:" in text


# ----------------------------------------------------------------------------- shared checks
def _tree(tmp_path: Path) -> Path:
    (tmp_path / "notdir").write_text("a file\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "old.json").write_text("old\n")
    return tmp_path


@pytest.mark.parametrize(("name", "mkdir", "says"), [
    ("notdir/x.json", False, "notdir is a file, not a folder"),
    ("notdir/a/x.json", True, "notdir is a file, not a folder"),
    ("out", False, "is a folder"),
    ("missing/x.json", False, "folder {tmp}/missing does not exist"),
])
def test_output_error_names_the_flag_and_what_is_wrong(tmp_path: Path, name: str, mkdir: bool,
                                                        says: str) -> None:
    _tree(tmp_path)
    msg = cli.output_error("--json", tmp_path / name, mkdir=mkdir)
    assert msg is not None and msg.startswith(f"--json {tmp_path / name}: ") and "\n" not in msg
    assert says.format(tmp=tmp_path) in msg


def test_output_error_accepts_a_new_or_existing_file_and_missing_folders_with_mkdir(
        tmp_path: Path) -> None:
    _tree(tmp_path)
    for name, mkdir in (("new.json", False), ("old.json", False), ("out/x.json", False),
                        ("a/b/x.json", True)):
        assert cli.output_error("--json", tmp_path / name, mkdir=mkdir) is None, name
    assert cli.output_error("--json", None) is None
    assert "not a regular file" in cli.output_error("--json", Path("/dev/null"))
    assert not (tmp_path / "a").exists()  # checking creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notdir", "old.json", "out"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_output_error_refuses_a_folder_that_takes_no_files_whatever_its_mode() -> None:
    # /proc passes os.access(W_OK) for root; only creating an entry there shows the refusal
    for path, mkdir in ((Path("/proc/x.json"), False), (Path("/proc/a/x.json"), True)):
        msg = cli.output_error("--json", path, mkdir=mkdir)
        assert msg is not None and msg.startswith(f"--json {path}: /proc is not writable (")
        assert "\n" not in msg


def test_write_output_replaces_atomically_and_fails_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "out"))  # where a failure keeps it
    old, keep = tmp_path / "old.json", tmp_path / "keep.json"
    os.link(old, keep)  # the old file's inode: an atomic replace leaves it as it was
    assert cli.write_output("--json", old, "new\n") is None
    assert old.read_text() == "new\n" and keep.read_text() == "old\n"
    assert cli.write_output("--json", tmp_path / "a" / "b.json", "x\n", mkdir=True) is None
    assert (tmp_path / "a" / "b.json").read_text() == "x\n"
    err = cli.write_output("--json", tmp_path / "notdir" / "x.json", "x\n", mkdir=True)
    assert err is not None and err.startswith("--json ") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "keep.json", "notdir", "old.json",
                                                          "out"]  # no temporary file left


def test_write_output_keeps_what_it_could_not_write(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    spare = tmp_path / "spare"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    err = cli.write_output("--json", tmp_path / "notdir" / "x.json", '{"rows": [1]}\n')
    assert err is not None and "\n" not in err and "; kept in " in err
    kept = Path(err.rsplit("; kept in ", 1)[1])
    assert kept.parent == spare and kept.suffix == ".json"
    assert kept.read_text() == '{"rows": [1]}\n'
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "notdir"))  # nowhere to keep it
    err = cli.write_output("--json", tmp_path / "notdir" / "x.json", "x\n")
    assert err is not None and err.endswith(")") and "; not kept either (" in err


def test_device_error_refuses_nccl_for_cpu_tensors_for_every_cli() -> None:
    """One check of --device/--backend for the trainer, phantom-bench and phantom-infer."""
    assert cli.device_error("cpu", "auto") is None and cli.device_error("cpu", "gloo") is None
    assert cli.device_error("cpu", "nccl").startswith("--backend=nccl: nccl needs --device=cuda")
    assert cli.device_error("tpu", "auto").startswith("--device='tpu'")
    assert cli.device_error("cpu", "mpi").startswith("--backend")


def test_minimum_error_names_the_first_bad_flag() -> None:
    assert cli.minimum_error({"--threads": None, "--steps": 1}, 1) is None
    assert cli.minimum_error({"--steps": 1, "--threads": -1}, 1) == "--threads=-1 must be >= 1"
    assert cli.minimum_error({"--micro-time": 0.0}, 0, strict=True) == "--micro-time=0.0 must be > 0"
    for bad in (float("nan"), float("inf")):
        assert cli.minimum_error({"--energy-window-s": bad}, 0, strict=True) is not None


def test_power_source_error_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from phantom_parallel.energy import sources

    def broken(name: str, **_: object) -> None:
        raise sources.SourceError(f"no {name} here")

    monkeypatch.setattr(sources, "resolve", broken)
    assert sources.source_error("none") is None and sources.source_error("auto") is None
    assert sources.source_error("rapl") == "--power-source rapl: no rapl here (use auto or none)"
    assert sources.source_error("nvml", "--source") == "--source nvml: no nvml here (use auto or none)"


def test_refuse_lets_local_rank_0_say_it_first(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    waited: list[float] = []
    monkeypatch.setattr(cli.time, "sleep", waited.append)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(SystemExit) as exc:
        cli.refuse("phantom-x", "--steps=0 must be >= 1")
    assert exc.value.code == 2 and waited == [cli.REFUSE_DELAY_S]
    assert capsys.readouterr().err == "phantom-x: error: --steps=0 must be >= 1\n"
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(SystemExit):
        cli.refuse("phantom-x", "bad")
    assert waited == [cli.REFUSE_DELAY_S]  # local rank 0 says it at once


def test_a_trainer_rank_that_prints_nothing_waits_for_the_one_that_does(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A CI run lost "--eval-every=129 must be ..." (found on every rank after they joined,
    printed by rank 0): rank 1 exited at once and torchrun ended rank 0 before it wrote."""
    from phantom_parallel import train_args

    waited: list[float] = []
    monkeypatch.setattr(train_args.time, "sleep", waited.append)
    err = train_args.InputError("--eval-every=129 must be 0", "job")
    assert err.report(rank=1, local_rank=1) == 2 and waited == [cli.REFUSE_DELAY_S]
    assert capsys.readouterr().err == ""
    assert err.report(rank=0, local_rank=0) == 2 and waited == [cli.REFUSE_DELAY_S]
    assert capsys.readouterr().err == "phantom-train: error: --eval-every=129 must be 0\n"
    assert train_args.InputError("", "rank").report(rank=0, local_rank=0) == 2  # another failed
    assert waited == [cli.REFUSE_DELAY_S] * 2 and capsys.readouterr().err == ""


# Every script with an output file, with arguments that are otherwise valid and quick to refuse.
OUTPUTS = [
    ("phantom_parallel.infer", "--json", ("--strategy", "serial", "--width", "8")),
    ("phantom_parallel.emulate", "--json", ("--width", "8", "--ghosts", "1", "--ranks", "2",
                                           "--power-source", "none")),
    ("phantom_parallel.emulate", "--gemm-table", ("--width", "8", "--ghosts", "1", "--ranks",
                                                  "2", "--power-source", "none")),
    ("phantom_parallel.costs_cli", "--json", ("project", "--hardware", "local-cpu", "--width",
                                              "64", "--ghosts", "2", "--ranks", "2")),
]


@pytest.mark.parametrize(("module", "flag", "args"), OUTPUTS)
@pytest.mark.parametrize("name", ["notdir/x.json", "out"])
def test_output_paths_are_refused_before_any_work_in_one_line(tmp_path: Path, module: str,
                                                              flag: str, args, name: str) -> None:
    _tree(tmp_path)
    res = _run(module, *args, flag, str(tmp_path / name))
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{flag} {tmp_path / name}: " in lines[0], res.stderr
    assert res.stdout == ""  # nothing measured or printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notdir", "old.json", "out"]
    assert not any((tmp_path / "out").iterdir())
