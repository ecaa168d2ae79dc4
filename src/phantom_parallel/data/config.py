"""What determines a dataset's bytes: :class:`DataConfig`, the file-format constants and the
manifest's required keys (:func:`check_manifest`), the splits and the seeded random streams
(``SeedSequence(seed, spawn_key=(purpose, index))``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
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
            multi-index model); 0 = full rank; at most ``min(d_in, teacher_width)``.
        n_train, n_val: rows per split (at least 1).
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
        for name in ("d_in", "d_out", "teacher_width", "n_train", "n_val", "shard_rows",
                     "calibration_rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"DataConfig.{name}={v!r} must be a positive int")
        for name in ("teacher_layers", "teacher_rank", "n_test", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"DataConfig.{name}={v!r} must be a non-negative int")
        if self.teacher_rank > min(self.d_in, self.teacher_width):
            raise ValueError(f"DataConfig.teacher_rank={self.teacher_rank} > min(DataConfig.d_in="
                             f"{self.d_in}, DataConfig.teacher_width={self.teacher_width}): the "
                             "first layer's rank cannot exceed either (0: full rank)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"DataConfig.activation={self.activation!r} is unknown; "
                             f"expected one of {ACTIVATIONS}")
        for name, zero_ok in (("noise", True), ("teacher_gain", False), ("quantum", False)):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and (v >= 0 if zero_ok else v > 0)):
                raise ValueError(f"DataConfig.{name}={v!r} must be a finite number "
                                 f"{'>= 0' if zero_ok else '> 0'}")

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


_KINDS = {int: "an integer", str: "a string", dict: "an object", list: "a list"}


def check_manifest(f: Path, manifest: Any) -> dict[str, Any]:
    """``manifest`` (read from file ``f``: ``manifest.json`` or the progress file) if it has
    what readers of a dataset use; else ValueError naming ``f`` and the key."""
    def need(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
        value = obj.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{f}: key '{where}{key}' is missing or not {_KINDS[kind]}")
        return value

    if not isinstance(manifest, dict):
        raise ValueError(f"{f}: not a JSON object")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{f}: format {manifest.get('format')!r} is not {FORMAT!r}")
    for key in ("d_in", "d_out"):
        need(manifest, key, int, "")
    splits = need(manifest, "splits", dict, "")
    for split in ("train", "val"):
        need(splits, split, dict, "splits.")
    for split, info in splits.items():
        if split not in SPLITS or not isinstance(info, dict):
            raise ValueError(f"{f}: key 'splits.{split}' is not a split of {SPLITS}")
        need(info, "rows", int, f"splits.{split}.")
        for i, rec in enumerate(need(info, "shards", list, f"splits.{split}.")):
            if not isinstance(rec, dict):
                raise ValueError(f"{f}: key 'splits.{split}.shards[{i}]' is not {_KINDS[dict]}")
            for key, kind in (("x", str), ("y", str), ("rows", int), ("sha256_x", str),
                              ("sha256_y", str)):
                need(rec, key, kind, f"splits.{split}.shards[{i}].")
    return manifest


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _rng(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """PCG64 generator for one purpose/index, independent of every other stream."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(_PURPOSE[purpose], index))
    return np.random.Generator(np.random.PCG64(ss))

