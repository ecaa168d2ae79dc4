"""The fixed random teacher FFN and one shard's arrays (:func:`make_shard`).

The teacher runs in float64 (numpy on the CPU; torch on a GPU with ``device="cuda"``); its
calibration statistics are always computed on the CPU, so every device standardises with the
same numbers. Inputs and noise are always drawn on the CPU (numpy PCG64), so only the teacher's
forward pass can differ between devices (see ``docs/method.md``, "Generating on a GPU").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from phantom_parallel.data.config import DataConfig, _check_split, _rng
from phantom_parallel.data.device import TorchForward, check_device


def teacher_weights(cfg: DataConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Teacher ``(W, b)`` per linear, float64, ``W`` of shape ``out x in``."""
    rng = _rng(cfg.seed, "teacher")
    w = cfg.teacher_width
    dims = [cfg.d_in] + [w] * (cfg.teacher_layers + 1) + [cfg.d_out]
    params = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        hidden = 0 < i < len(dims) - 2
        std = (cfg.teacher_gain if hidden else 1.0) / np.sqrt(fan_in)
        if i == 0 and cfg.teacher_rank > 0:
            r = cfg.teacher_rank
            A = rng.standard_normal((fan_out, r)) / np.sqrt(r)
            B = rng.standard_normal((r, fan_in)) / np.sqrt(fan_in)
            W = A @ B
        else:
            W = rng.standard_normal((fan_out, fan_in)) * std
        b = rng.standard_normal(fan_out) * 0.1
        params.append((W, b))
    return params


def _act(z: np.ndarray, name: str) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sin":
        return np.sin(z)
    # gelu, tanh approximation (elementwise numpy, float64)
    return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3)))


_CHUNK = 4096


def teacher_forward(
    params: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, activation: str
) -> np.ndarray:
    """Raw teacher output (rows x d_out, float64) of ``x`` (rows x d_in), in row chunks of 4096."""
    out = np.empty((x.shape[0], params[-1][0].shape[0]), dtype=np.float64)
    for lo in range(0, x.shape[0], _CHUNK):
        h = np.asarray(x[lo : lo + _CHUNK], dtype=np.float64)
        for W, b in params[:-1]:
            h = _act(h @ W.T + b, activation)
        W, b = params[-1]
        out[lo : lo + _CHUNK] = h @ W.T + b
    return out


def _round_sig(v: float) -> float:
    """Round a statistic to 9 significant digits (stable JSON across BLAS builds)."""
    return float(f"{v:.9g}")


def teacher_stats(
    cfg: DataConfig, params: list[tuple[np.ndarray, np.ndarray]] | None = None
) -> tuple[list[float], list[float]]:
    """Per-output mean and std of the raw teacher on the fixed calibration sample."""
    params = teacher_weights(cfg) if params is None else params
    x = _rng(cfg.seed, "calibration").standard_normal((cfg.calibration_rows, cfg.d_in))
    x = x.astype(np.float32).astype(np.float64)
    t = teacher_forward(params, x, cfg.activation)
    mean = [_round_sig(v) for v in t.mean(axis=0)]
    std = [_round_sig(max(v, 1e-12)) for v in t.std(axis=0)]
    return mean, std


@dataclass
class Teacher:
    """Teacher weights plus standardisation; ``__call__`` gives standardised float64 targets.

    ``device``: where the forward pass runs (``cpu``: numpy, the reference; ``cuda``/``cuda:N``:
    :class:`phantom_parallel.data.device.TorchForward`). Weights and statistics are the CPU's.
    """

    cfg: DataConfig
    params: list[tuple[np.ndarray, np.ndarray]]
    mean: np.ndarray
    std: np.ndarray
    device: str = "cpu"
    forward: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def build(cls, cfg: DataConfig, device: str = "cpu") -> Teacher:
        """Weights from ``cfg.seed`` and calibration statistics (both on the CPU); the forward
        pass on ``device``.

        Raises:
            ValueError: ``device`` cannot be used here (names ``--device``).
        """
        device = check_device(device)  # before the (possibly large) weights are drawn
        params = teacher_weights(cfg)
        mean, std = teacher_stats(cfg, params)
        forward = None if device == "cpu" else TorchForward(params, cfg.activation, device, _CHUNK)
        return cls(cfg, params, np.asarray(mean), np.asarray(std), device, forward)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardised noiseless targets (rows x d_out, float64) of ``x`` (rows x d_in)."""
        raw = (teacher_forward(self.params, x, self.cfg.activation) if self.forward is None
               else self.forward(x))
        return (raw - self.mean) / self.std


def make_shard(
    cfg: DataConfig, split: str, index: int, teacher: Teacher | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of one shard: ``x`` (rows x d_in) and ``y`` (rows x d_out), float32.

    Depends only on ``(cfg, split, index)``: stream ``SeedSequence(seed, spawn_key=(split code,
    index))`` draws ``x`` then ``eps``.
    """
    _check_split(split)
    sizes = cfg.shard_sizes(split)
    if not 0 <= index < len(sizes):
        raise ValueError(f"{split} has {len(sizes)} shards; index {index} is out of range")
    rows = sizes[index]
    teacher = Teacher.build(cfg) if teacher is None else teacher
    rng = _rng(cfg.seed, split, index)
    x = rng.standard_normal((rows, cfg.d_in)).astype(np.float32)
    eps = rng.standard_normal((rows, cfg.d_out))
    y = teacher(x.astype(np.float64)) + cfg.noise * eps
    y = (np.round(y / cfg.quantum) * cfg.quantum).astype(np.float32)
    return x, y

