"""Tests of the seeded teacher-student data (:mod:`phantom_parallel.data`)."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from phantom_parallel import data
from phantom_parallel.data import (
    DataConfig,
    ShardedDataset,
    generate,
    iterate_batches,
    verify,
)

# 4 train shards (256, 256, 256, 232 rows), 2 val shards (256, 44), 2 test shards (n_test = n_val)
SMALL = DataConfig(
    d_in=8,
    d_out=3,
    teacher_width=32,
    teacher_layers=2,
    teacher_rank=4,
    n_train=1000,
    n_val=300,
    shard_rows=256,
    noise=0.05,
    seed=7,
    calibration_rows=2048,
)


def _files(d: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(d.iterdir()) if f.is_file()}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def ds_dir(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    generate(SMALL, out)
    return out


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------


def test_deterministic_bytes(tmp_path: Path, ds_dir: Path) -> None:
    again = tmp_path / "again"
    generate(SMALL, again)
    a, b = _files(ds_dir), _files(again)
    assert a == b
    assert sorted(a) == sorted(
        ["manifest.json"]
        + [f"train-{k}-{i:05d}.npy" for k in "xy" for i in range(4)]
        + [f"val-{k}-{i:05d}.npy" for k in "xy" for i in range(2)]
        + [f"test-{k}-{i:05d}.npy" for k in "xy" for i in range(2)]
    )
    assert not list(ds_dir.glob(".*"))  # no temporary or progress files left


def test_order_independent(tmp_path: Path, ds_dir: Path) -> None:
    plan = [(s, i) for s, n in (("train", 4), ("val", 2), ("test", 2)) for i in range(n)]
    rev = tmp_path / "rev"
    generate(SMALL, rev, order=plan[::-1])
    assert _files(rev) == _files(ds_dir)
    # a single shard written on its own (e.g. another process) is the same file
    solo = tmp_path / "solo"
    rec = data.write_shard(SMALL, solo, "val", 1)
    assert (solo / rec["y"]).read_bytes() == (ds_dir / rec["y"]).read_bytes()
    with pytest.raises(ValueError, match="order"):
        generate(SMALL, tmp_path / "bad", order=plan[:-1])


def test_seed_changes_data(tmp_path: Path, ds_dir: Path) -> None:
    other = tmp_path / "other"
    generate(DataConfig(**{**vars(SMALL), "seed": 8}), other)
    assert (other / "train-x-00000.npy").read_bytes() != (ds_dir / "train-x-00000.npy").read_bytes()
    # shards of one dataset are different streams
    x0 = np.load(ds_dir / "train-x-00000.npy")
    x1 = np.load(ds_dir / "train-x-00001.npy")
    assert not np.array_equal(x0, x1)


def test_golden_hashes(ds_dir: Path) -> None:
    """Pins the generation algorithm: these bytes must be the same on every machine."""
    m = json.loads((ds_dir / "manifest.json").read_text())
    val1 = m["splits"]["val"]["shards"][1]
    assert val1["sha256_x"] == GOLDEN_VAL1_X
    assert val1["sha256_y"] == GOLDEN_VAL1_Y
    test1 = m["splits"]["test"]["shards"][1]
    assert test1["sha256_x"] == GOLDEN_TEST1_X
    assert test1["sha256_y"] == GOLDEN_TEST1_Y


# val: unchanged since before the test split existed (adding it changed no train/val byte)
GOLDEN_VAL1_X = "8094ae7b0b7ff5dc2511f61235a8e13a78c017b93a294079e109fdb45b8fdd9c"
GOLDEN_VAL1_Y = "af5e5cf7df74913614c7bb8efcc11c32de7b632e3af00a548dc3f69bcb6542d4"
GOLDEN_TEST1_X = "9db6a9201dce612f01fdcb2225217a34b94f16a12e3ebb8a3a5a570f8ff4f124"
GOLDEN_TEST1_Y = "c868a814040ff8cfdde12dd71caf392e023b16262fdba640bf58f82ba43794cc"


def test_test_split_is_its_own_stream(ds_dir: Path, tmp_path: Path) -> None:
    """Test rows differ from train/val rows; n_test changes no train/val byte; 0 = no test
    split (the dataset still loads)."""
    xt = np.load(ds_dir / "test-x-00000.npy")
    for other in ("train-x-00000.npy", "val-x-00000.npy"):
        assert not np.isin(xt[:, 0], np.load(ds_dir / other)[:, 0]).any()
    none = tmp_path / "none"
    generate(DataConfig(**{**vars(SMALL), "n_test": 0}), none)
    assert _files(none).keys() - {"manifest.json"} == {
        f for f in _files(ds_dir) if not f.startswith("test-") and f != "manifest.json"}
    for f in _files(none):
        if f != "manifest.json":
            assert (none / f).read_bytes() == (ds_dir / f).read_bytes(), f
    assert ShardedDataset(none, "test").rows == 0
    assert DataConfig(n_val=5).n_test == 5 and DataConfig(n_val=5, n_test=9).n_test == 9


def test_dataset_made_before_the_test_split_loads_and_upgrades(ds_dir: Path) -> None:
    m = json.loads((ds_dir / "manifest.json").read_text())
    del m["config"]["n_test"], m["splits"]["test"]
    for f in ds_dir.glob("test-*.npy"):
        f.unlink()
    (ds_dir / "manifest.json").write_text(json.dumps(m))
    assert ShardedDataset(ds_dir, "val").rows == 300
    with pytest.raises(ValueError, match="no split 'test'"):
        ShardedDataset(ds_dir, "test")
    kept = {f.name: f.stat().st_mtime_ns for f in ds_dir.glob("*.npy")}
    generate(SMALL, ds_dir)  # adds the test shards, keeps train/val files untouched
    assert {f: (ds_dir / f).stat().st_mtime_ns for f in kept} == kept
    assert ShardedDataset(ds_dir, "test").rows == 300


def test_manifest_content(ds_dir: Path) -> None:
    m = json.loads((ds_dir / "manifest.json").read_text())
    assert m["format"] == "phantom-data/1"
    assert (m["d_in"], m["d_out"], m["seed"], m["noise"], m["dtype"]) == (8, 3, 7, 0.05, "float32")
    t = m["teacher"]
    assert (t["width"], t["layers"], t["activation"], t["rank"]) == (32, 2, "tanh", 4)
    assert len(t["output_mean"]) == len(t["output_std"]) == 3
    assert m["config"] == vars(SMALL)
    assert m["splits"]["train"]["rows"] == 1000 and m["splits"]["val"]["rows"] == 300
    assert m["splits"]["test"]["rows"] == 300
    assert [s["rows"] for s in m["splits"]["train"]["shards"]] == [256, 256, 256, 232]
    assert [s["rows"] for s in m["splits"]["val"]["shards"]] == [256, 44]
    for split in ("train", "val", "test"):
        for s in m["splits"][split]["shards"]:
            assert set(s) == {"x", "y", "rows", "sha256_x", "sha256_y"}
            assert _sha((ds_dir / s["x"]).read_bytes()) == s["sha256_x"]
            assert _sha((ds_dir / s["y"]).read_bytes()) == s["sha256_y"]
            x, y = np.load(ds_dir / s["x"]), np.load(ds_dir / s["y"])
            assert x.dtype == y.dtype == np.float32
            assert x.shape == (s["rows"], 8) and y.shape == (s["rows"], 3)


def test_targets_are_teacher_plus_noise(ds_dir: Path) -> None:
    teacher = data.Teacher.build(SMALL)
    x = np.load(ds_dir / "train-x-00002.npy")
    y = np.load(ds_dir / "train-y-00002.npy")
    resid = y.astype(np.float64) - teacher(x.astype(np.float64))
    assert abs(resid.std() - SMALL.noise) < 0.01
    assert abs(resid.mean()) < 0.01
    # targets lie on the quantum grid
    assert np.all(np.round(y.astype(np.float64) / SMALL.quantum) * SMALL.quantum == y)


# --------------------------------------------------------------------------------------------
# resume / idempotence / mismatch
# --------------------------------------------------------------------------------------------


def test_resume_after_interruption(
    tmp_path: Path, ds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resume"
    real = data.write_shard
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(data.shards, "write_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate(SMALL, out)
    monkeypatch.setattr(data.shards, "write_shard", real)
    assert not (out / "manifest.json").exists()
    assert (out / data.PARTIAL).exists()
    with pytest.raises(FileNotFoundError, match="unfinished"):
        ShardedDataset(out)
    kept = {f: (out / f).stat().st_mtime_ns for f in ("train-x-00000.npy", "train-y-00001.npy")}
    # a half-written leftover of the crashed shard is replaced
    (out / "train-x-00002.npy").write_bytes(b"garbage")
    generate(SMALL, out)
    assert _files(out) == _files(ds_dir)
    assert {f: (out / f).stat().st_mtime_ns for f in kept} == kept
    verify(out)


def test_idempotent_and_repairs(tmp_path: Path, ds_dir: Path) -> None:
    before = {f.name: f.stat().st_mtime_ns for f in ds_dir.iterdir()}
    generate(SMALL, ds_dir)
    assert {f.name: f.stat().st_mtime_ns for f in ds_dir.iterdir()} == before
    ref = _files(ds_dir)
    (ds_dir / "val-y-00001.npy").unlink()
    bad = ds_dir / "train-y-00003.npy"
    bad.write_bytes(bad.read_bytes()[:-4] + b"\0\0\0\0")
    generate(SMALL, ds_dir)
    assert _files(ds_dir) == ref


def test_config_mismatch(ds_dir: Path) -> None:
    other = DataConfig(**{**vars(SMALL), "noise": 0.1})
    with pytest.raises(ValueError, match="noise"):
        generate(other, ds_dir)
    generate(other, ds_dir, overwrite=True)
    assert json.loads((ds_dir / "manifest.json").read_text())["noise"] == 0.1
    verify(ds_dir)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="d_in"):
        DataConfig(d_in=0)
    with pytest.raises(ValueError, match="'softsign'"):
        DataConfig(activation="softsign")
    with pytest.raises(ValueError, match="noise"):
        DataConfig(noise=-1.0)
    with pytest.raises(ValueError, match="'bogus'"):
        SMALL.split_rows("bogus")
    with pytest.raises(ValueError, match="n_test"):
        DataConfig(n_test=-1)
    with pytest.raises(ValueError, match=re.escape("teacher_rank=9 > min(DataConfig.d_in=8")):
        DataConfig(d_in=8, teacher_width=32, teacher_rank=9)
    assert DataConfig(d_in=8, teacher_width=32, teacher_rank=8).teacher_rank == 8


# --------------------------------------------------------------------------------------------
# loading and verification
# --------------------------------------------------------------------------------------------


def test_mmap_loading(ds_dir: Path) -> None:
    ds = ShardedDataset(ds_dir, "train")
    assert (ds.rows, ds.d_in, ds.d_out, len(ds)) == (1000, 8, 3, 1000)
    assert all(isinstance(a, np.memmap) for pair in ds._open() for a in pair)
    x_all = np.concatenate([np.load(ds_dir / f"train-x-{i:05d}.npy") for i in range(4)])
    y_all = np.concatenate([np.load(ds_dir / f"train-y-{i:05d}.npy") for i in range(4)])
    idx = np.array([999, 0, 255, 256, 511, 512, 768, 767, 5, 5])
    x, y = ds.get_batch(idx)
    assert x.dtype == y.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(x_all[idx]))
    assert torch.equal(y, torch.from_numpy(y_all[idx]))
    xa, ya = ds.arrays()
    assert np.array_equal(xa, x_all) and np.array_equal(ya, y_all)
    with pytest.raises(IndexError):
        ds.get_batch([1000])
    val = ShardedDataset(ds_dir, "val")
    assert val.rows == 300
    # picklable (e.g. for DataLoader workers) without copying the maps
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 10_000
    assert torch.equal(clone.get_batch(idx)[0], x)


def test_missing_shard_names_file(ds_dir: Path) -> None:
    missing = ds_dir / "train-y-00002.npy"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("train-y-00002.npy")):
        ShardedDataset(ds_dir, "train")
    with pytest.raises(FileNotFoundError, match=re.escape("train-y-00002.npy")):
        verify(ds_dir)
    ShardedDataset(ds_dir, "val")  # the other split is fine
    with pytest.raises(FileNotFoundError, match=re.escape("manifest.json")):
        ShardedDataset(ds_dir / "nope")


def test_corrupt_shard_detected(ds_dir: Path) -> None:
    assert verify(ds_dir)["files"] == 16
    f = ds_dir / "train-x-00001.npy"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape("train-x-00001.npy")):
        verify(ds_dir)
    truncated = ds_dir / "val-y-00000.npy"
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ValueError, match=re.escape("val-y-00000.npy")):
        ShardedDataset(ds_dir, "val")


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------


def test_iterate_batches(ds_dir: Path) -> None:
    ds = ShardedDataset(ds_dir, "train")
    a = list(iterate_batches(ds, 64, epoch=3, seed=11))
    b = list(iterate_batches(ds, 64, epoch=3, seed=11))
    assert len(a) == 1000 // 64
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b, strict=True)
    )
    assert all(x.shape == (64, 8) and y.shape == (64, 3) for x, y in a)
    c = list(iterate_batches(ds, 64, epoch=4, seed=11))
    d = list(iterate_batches(ds, 64, epoch=3, seed=12))
    assert not torch.equal(a[0][0], c[0][0]) and not torch.equal(a[0][0], d[0][0])
    # resume from a step: exactly the remaining batches
    r = list(iterate_batches(ds, 64, epoch=3, seed=11, start_step=5))
    assert len(r) == len(a) - 5
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a[5:], r, strict=True)
    )
    assert list(iterate_batches(ds, 64, epoch=3, seed=11, start_step=len(a))) == []
    with pytest.raises(ValueError, match="start_step"):
        list(iterate_batches(ds, 64, epoch=3, seed=11, start_step=len(a) + 1))
    # without drop_last every row appears exactly once
    full = list(iterate_batches(ds, 64, epoch=0, seed=0, drop_last=False))
    assert [len(x) for x, _ in full] == [64] * 15 + [40]
    xs = torch.cat([x for x, _ in full])
    assert torch.equal(xs.sort(dim=0).values, torch.from_numpy(ds.arrays()[0]).sort(dim=0).values)
    perm = data.epoch_permutation(1000, 0, 0)
    assert np.array_equal(np.sort(perm), np.arange(1000))


# --------------------------------------------------------------------------------------------
# task hardness (fast proxies; the real evidence is benchmarks/task_hardness.py)
# --------------------------------------------------------------------------------------------


def test_default_targets_are_nonlinear() -> None:
    """Default task: standardised targets, noise small, far from linearly predictable."""
    cfg = DataConfig(shard_rows=8192, n_train=16384, n_val=1)
    x, y = data.make_shard(cfg, "train", 0)
    xv, yv = data.make_shard(cfg, "train", 1)
    var = yv.astype(np.float64).var(axis=0).mean()
    assert 0.8 < var < 1.2
    X = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(X, y.astype(np.float64), rcond=None)
    Xv = np.hstack([xv, np.ones((len(xv), 1))]).astype(np.float64)
    r2 = 1 - ((Xv @ coef - yv) ** 2).mean() / var
    assert r2 < 0.85, r2
    assert cfg.noise**2 < 0.01 * (1 - r2) * var  # noise far below the nonlinear part


def test_half_width_is_worse_tiny() -> None:
    """Tiny version of the hardness check: a 4x narrower student fits clearly worse."""
    cfg = DataConfig(
        d_in=8,
        d_out=2,
        teacher_width=128,
        teacher_layers=2,
        teacher_rank=3,
        n_train=4096,
        n_val=1024,
        shard_rows=4096,
        noise=0.02,
        seed=0,
        calibration_rows=2048,
    )
    x, y = (torch.from_numpy(a) for a in data.make_shard(cfg, "train", 0))
    xv, yv = (torch.from_numpy(a) for a in data.make_shard(cfg, "val", 0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: avoid thread oversubscription on busy machines

    def fit(width: int, seed: int) -> float:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(8, width),
            torch.nn.Tanh(),
            torch.nn.Linear(width, width),
            torch.nn.Tanh(),
            torch.nn.Linear(width, 2),
        )
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for step in range(600):
            idx = torch.arange(step % 16 * 256, (step % 16 + 1) * 256)
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(model(xv), yv))

    try:
        wide = [fit(64, s) for s in (0, 1)]
        narrow = [fit(8, s) for s in (0, 1)]
    finally:
        torch.set_num_threads(threads)
    assert max(wide) < min(narrow), (wide, narrow)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = [
        "generate",
        "--out",
        str(out),
        "--d-in",
        "8",
        "--d-out",
        "3",
        "--teacher-width",
        "32",
        "--teacher-layers",
        "2",
        "--teacher-rank",
        "4",
        "--n-train",
        "1000",
        "--n-val",
        "300",
        "--shard-rows",
        "256",
        "--noise",
        "0.05",
        "--seed",
        "7",
        "--quiet",
    ]
    assert data.main(argv) == 0
    assert data.main(["verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert data.main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == {"train": 1000, "val": 300, "test": 300}
    (out / "val-x-00001.npy").write_bytes(b"x")
    assert data.main(["verify", str(out)]) == 1
    assert "val-x-00001.npy" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# bad input: one line naming the flag or file, nothing written
# --------------------------------------------------------------------------------------------

SMALL_FLAGS = ["--d-in", "8", "--d-out", "3", "--teacher-width", "32", "--teacher-layers", "2",
               "--teacher-rank", "4", "--n-train", "1000", "--n-val", "300", "--shard-rows", "256",
               "--noise", "0.05", "--seed", "7", "--quiet"]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phantom-data: error: "), err
    return err


@pytest.mark.parametrize("name", ["manifest.json", data.PARTIAL])
def test_unreadable_manifest_is_refused_not_overwritten(
    ds_dir: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A corrupt manifest (or progress file) is not taken for an empty folder: another config
    without --overwrite is refused, naming the file; --overwrite replaces the dataset."""
    if name != "manifest.json":
        (ds_dir / "manifest.json").unlink()
    (ds_dir / name).write_text("{bad")
    before = _files(ds_dir)
    other = ["generate", "--out", str(ds_dir), "--n-train", "64", "--n-val", "16", "--seed", "7",
             "--quiet"]
    assert data.main(other) == 2
    err = _one_error_line(capsys)
    assert f"{ds_dir / name}: not valid JSON" in err and "--overwrite" in err
    assert ("restore it to keep them, or remove it to generate every shard again" in err) == (
        name == data.PARTIAL)  # not --overwrite first: it deletes the shards
    assert _files(ds_dir) == before
    assert data.main(["generate", "--out", str(ds_dir), *SMALL_FLAGS]) == 2  # same config too
    assert _files(ds_dir) == before
    capsys.readouterr()
    assert data.main([*other, "--overwrite"]) == 0
    assert verify(ds_dir)["rows"] == {"train": 64, "val": 16, "test": 16}


@pytest.mark.parametrize(("text", "message"), [
    ("{bad", "manifest.json: not valid JSON (Expecting property name"),
    ("[]", "manifest.json: not a JSON object"),
    ("{}", "manifest.json: format None is not 'phantom-data/1'"),
    (None, "manifest.json: key 'splits.val.shards[1].sha256_y' is missing or not a string"),
])
def test_info_and_verify_name_a_malformed_manifest(
    ds_dir: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str
) -> None:
    if text is None:
        m = json.loads((ds_dir / "manifest.json").read_text())
        del m["splits"]["val"]["shards"][1]["sha256_y"]
        text = json.dumps(m)
    (ds_dir / "manifest.json").write_text(text)
    for command in ("info", "verify"):
        assert data.main([command, str(ds_dir)]) == 2
        assert message in _one_error_line(capsys)
    with pytest.raises(ValueError, match=re.escape(message)):
        ShardedDataset(ds_dir)


def test_out_below_a_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notdir").write_text("")
    for out in (tmp_path / "notdir" / "ds", tmp_path / "notdir"):
        assert data.main(["generate", "--out", str(out), *SMALL_FLAGS]) == 2
        err = _one_error_line(capsys)
        assert f"cannot create the dataset folder {out}: {tmp_path / 'notdir'} is a file" in err


@pytest.mark.parametrize(("flags", "message"), [
    (["--n-train", "0"], "--n-train=0 must be a positive int"),
    (["--n-val", "0"], "--n-val=0 must be a positive int"),
    (["--teacher-layers", "-1"], "--teacher-layers=-1 must be a non-negative int"),
    (["--noise", "nan"], "--noise=nan must be a finite number >= 0"),
    (["--teacher-gain", "0"], "--teacher-gain=0.0 must be a finite number > 0"),
    (["--seed", "-1"], "--seed=-1 must be a non-negative int"),
    (["--device", "foo"], "--device='foo': expected cpu, cuda or cuda:N"),
    (["--teacher-rank", "100"], "--teacher-rank=100 > min(--d-in=8, --teacher-width=32)"),
    (["--d-in", "3"], "--teacher-rank=4 > min(--d-in=3, --teacher-width=32)"),
])
def test_bad_generate_flags_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    out = tmp_path / "ds"
    assert data.main(["generate", "--out", str(out), *SMALL_FLAGS, *flags]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_usage_errors_exit_2_and_a_failed_check_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input is refused with argparse's status 2; verify finding a bad shard is 1."""
    assert data.main(["generate", "--out", "/proc/x", *SMALL_FLAGS]) == 2
    assert "cannot create the dataset folder /proc/x" in _one_error_line(capsys)
    for command in ("info", "verify"):
        assert data.main([command, str(tmp_path / "none")]) == 2
        assert f"{tmp_path / 'none' / 'manifest.json'}" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as exc:
        data.main(["generate", "--out", str(tmp_path / "ds"), "--n-train", "x"])
    assert exc.value.code == 2
