"""What determines a dataset's bytes: :class:`DataConfig`, the file-format constants, the splits
and the seeded random streams (``SeedSequence(seed, spawn_key=(purpose, index))``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "phantom-data/1"
"""Value of ``manifest["format"]``."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.json"
PARTIAL = ".manifest.partial.json"

# SeedSequence spawn-key purposes (first element of spawn_key); never change them: they define
# the data.
_PURPOSE = {"train": 0, "val": 1, "teacher": 2, "calibration": 3, "epoch": 4, "test": 5}

ACTIVATIONS = ("tanh", "gelu", "relu", "sin")


@dataclass(frozen=True)
class DataConfig:
    """Everything that determines the dataset's bytes.

    Attributes:
        d_in, d_out: input / output features.
        teacher_width: teacher hidden width ``w``.
        teacher_layers: teacher hidden ``w x w`` layers (teacher has ``teacher_layers + 2``
            linears, like the student FFN).
        activation: teacher activation (``tanh``, ``gelu``, ``relu``, ``sin``).
        teacher_gain: hidden weights ``~ N(0, gain^2 / fan_in)``; larger gain = rougher function.
        teacher_rank: rank ``r`` of the teacher's first layer (``W_1 = A B``, ``A`` width x r,
            ``B`` r x d_in): the targets depend on ``x`` only through ``r`` directions (a
            multi-index model); 0 = full rank.
        n_train, n_val: rows per split.
        n_test: rows of the held-out test split (``None``: ``n_val``; 0: no test split). Its
            shards are their own streams, so adding it changes no train/val byte.
        shard_rows: rows per shard (last shard of a split may be shorter).
        noise: standard deviation of the additive Gaussian noise on the standardised targets.
        seed: root seed.
        quantum: targets are rounded to multiples of this before the float32 cast.
        calibration_rows: rows of the fixed sample used to standardise the teacher output.
    """

    d_in: int = 64
    d_out: int = 8
    teacher_width: int = 512
    teacher_layers: int = 4
    activation: str = "tanh"
    teacher_gain: float = 1.5
    teacher_rank: int = 8
    n_train: int = 65536
    n_val: int = 8192
    n_test: int | None = None
    shard_rows: int = 16384
    noise: float = 0.05
    seed: int = 0
    quantum: float = 2.0**-16
    calibration_rows: int = 8192

    def __post_init__(self) -> None:
        if self.n_test is None:
            object.__setattr__(self, "n_test", self.n_val)
        for name in ("d_in", "d_out", "teacher_width", "shard_rows", "calibration_rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"DataConfig.{name} must be a positive int, got {v!r}")
        for name in ("teacher_layers", "teacher_rank", "n_train", "n_val", "n_test", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"DataConfig.{name} must be a non-negative int, got {v!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; expected one of {ACTIVATIONS}"
            )
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if not self.teacher_gain > 0:
            raise ValueError(f"teacher_gain must be > 0, got {self.teacher_gain!r}")
        if not self.quantum > 0:
            raise ValueError(f"quantum must be > 0, got {self.quantum!r}")

    def split_rows(self, split: str) -> int:
        """Rows of ``split`` (``train``, ``val`` or ``test``)."""
        _check_split(split)
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]  # type: ignore[return-value]

    def shard_sizes(self, split: str) -> list[int]:
        """Rows of each shard of ``split``."""
        rows = self.split_rows(split)
        full, rest = divmod(rows, self.shard_rows)
        return [self.shard_rows] * full + ([rest] if rest else [])

    def teacher_spec(self) -> dict[str, Any]:
        """Teacher description stored in the manifest (without the calibration statistics)."""
        return {
            "kind": "mlp",
            "d_in": self.d_in,
            "width": self.teacher_width,
            "layers": self.teacher_layers,
            "d_out": self.d_out,
            "activation": self.activation,
            "gain": self.teacher_gain,
            "rank": self.teacher_rank,
            "init": "first W = A B with A ~ N(0, 1/rank) (width x rank), B ~ N(0, 1/d_in) "
            "(rank x d_in) if rank > 0 else W ~ N(0, 1/d_in); hidden W ~ N(0, gain^2/fan_in); "
            "output W ~ N(0, 1/width); b ~ N(0, 0.1^2); float64",
        }


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _rng(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """PCG64 generator for one purpose/index, independent of every other stream."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(_PURPOSE[purpose], index))
    return np.random.Generator(np.random.PCG64(ss))

