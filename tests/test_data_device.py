"""``phantom-data generate --device``: the CPU path is the reference, unchanged bit for bit; the
torch forward pass used on GPUs agrees with it to the documented tolerance (one quantum per
target at most); ``--device cuda`` without a GPU is a one-line error naming the flag."""

from pathlib import Path

import numpy as np
import pytest
import torch

from phantom_parallel import data
from phantom_parallel.data import DataConfig, Teacher, generate, make_shard, teacher_forward
from phantom_parallel.data.device import TorchForward

from .test_data import SMALL, _files


def test_device_cpu_is_the_default_path_bit_for_bit(tmp_path: Path) -> None:
    generate(SMALL, tmp_path / "default")
    generate(SMALL, tmp_path / "cpu", device="cpu")
    assert _files(tmp_path / "default") == _files(tmp_path / "cpu")
    assert Teacher.build(SMALL, "cpu").forward is None  # numpy, no torch in the CPU path


@pytest.mark.parametrize("activation", data.ACTIVATIONS)
def test_torch_forward_matches_numpy_within_float64_rounding(activation: str) -> None:
    cfg = DataConfig(**{**SMALL.__dict__, "activation": activation, "teacher_width": 256})
    params = data.teacher_weights(cfg)
    x = np.random.default_rng(1).standard_normal((3000, cfg.d_in)).astype(np.float32)
    ref = teacher_forward(params, x.astype(np.float64), activation)
    got = TorchForward(params, activation, "cpu", chunk=1000)(x.astype(np.float64))
    assert got.dtype == np.float64 and got.shape == ref.shape
    assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)) < 1e-12


def test_shards_through_the_torch_path_differ_by_at_most_one_quantum() -> None:
    """The GPU code path, run on the CPU: stored targets equal the reference's, or differ by
    exactly one quantum where the exact value sits at a rounding midpoint."""
    ref_teacher = Teacher.build(SMALL)
    torch_teacher = Teacher(SMALL, ref_teacher.params, ref_teacher.mean, ref_teacher.std, "cpu",
                            TorchForward(ref_teacher.params, SMALL.activation, "cpu"))
    for split, index in (("train", 0), ("val", 1), ("test", 0)):
        x0, y0 = make_shard(SMALL, split, index, ref_teacher)
        x1, y1 = make_shard(SMALL, split, index, torch_teacher)
        assert np.array_equal(x0, x1)  # inputs never leave the CPU
        diff = np.abs(y1.astype(np.float64) - y0.astype(np.float64))
        assert np.all((diff == 0) | np.isclose(diff, SMALL.quantum, rtol=1e-6))
        assert np.mean(diff > 0) < 1e-3


@pytest.mark.parametrize(("device", "needle"), [
    ("cuda", "--device=cuda: torch sees no GPU"),
    ("cuda:0", "--device=cuda:0: torch sees no GPU"),
    ("tpu", "--device='tpu': expected cpu, cuda or cuda:N"),
])
def test_unusable_device_is_a_one_line_error_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    device: str, needle: str,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "never"
    assert data.main(["generate", "--out", str(out), "--device", device, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (runs where there is one)")
def test_cuda_shards_equal_cpu_shards_up_to_one_quantum(tmp_path: Path) -> None:
    cpu = generate(SMALL, tmp_path / "cpu")
    gpu = generate(SMALL, tmp_path / "gpu", device="cuda")
    assert cpu["teacher"] == gpu["teacher"]  # statistics are computed on the CPU either way
    for split in data.SPLITS:
        for a, b in zip(cpu["splits"][split]["shards"], gpu["splits"][split]["shards"],
                        strict=True):
            assert a["sha256_x"] == b["sha256_x"] and b["device"] == "cuda"
            ya = np.load(tmp_path / "cpu" / a["y"]).astype(np.float64)
            yb = np.load(tmp_path / "gpu" / b["y"]).astype(np.float64)
            assert np.max(np.abs(ya - yb)) <= SMALL.quantum * (1 + 1e-6)
