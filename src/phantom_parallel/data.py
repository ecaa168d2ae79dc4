"""Seeded synthetic teacher-student regression data in memory-mappable ``.npy`` shards.

A fixed random *teacher* FFN ``d_in -> teacher_width (teacher_layers hidden w x w layers) ->
d_out`` maps Gaussian inputs ``x ~ N(0, I)`` to targets
``y = (teacher(x) - mu) / sigma + noise * eps`` with ``eps ~ N(0, I)``; ``mu, sigma`` (per output)
standardise the teacher on a fixed calibration sample, so the targets have about unit variance
and ``noise`` is the noise standard deviation relative to that.

Determinism: every random stream is numpy's PCG64 seeded by ``np.random.SeedSequence(seed,
spawn_key=(purpose, index))`` (teacher weights, calibration inputs, and each shard of each split
independently), so shards can be generated in any order, in separate processes or machines. The
teacher runs in float64; targets are rounded to a grid of ``quantum`` (``2**-16``) before the cast
to float32, so that last-ulp differences between BLAS/libm builds almost never change a stored
bit (see ``docs/method.md``).

Layout (``docs/interfaces.md``)::

    DIR/manifest.json             format "phantom-data/1", written last
    DIR/{split}-x-{i:05d}.npy     float32, rows x d_in
    DIR/{split}-y-{i:05d}.npy     float32, rows x d_out

Files are written atomically (temporary file + rename). Generation is resumable: a progress file
``DIR/.manifest.partial.json`` records finished shards with their sha256, and shards whose files
still match are kept.

Loading: :class:`ShardedDataset` (``np.load(..., mmap_mode="r")``), :func:`iterate_batches`
(deterministic per-epoch permutation, can start at any step), :func:`verify` (sha256 check).
CLI: ``phantom-data generate|verify|info``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from phantom_parallel import cli
from phantom_parallel.atomic import write_json_atomic

FORMAT = "phantom-data/1"
"""Value of ``manifest["format"]``."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.json"
PARTIAL = ".manifest.partial.json"

# SeedSequence spawn-key purposes (first element of spawn_key); never change them: they define
# the data.
_PURPOSE = {"train": 0, "val": 1, "teacher": 2, "calibration": 3, "epoch": 4, "test": 5}

ACTIVATIONS = ("tanh", "gelu", "relu", "sin")


# --------------------------------------------------------------------------------------------
# configuration and teacher
# --------------------------------------------------------------------------------------------


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
    """Teacher weights plus standardisation; ``__call__`` gives standardised float64 targets."""

    cfg: DataConfig
    params: list[tuple[np.ndarray, np.ndarray]]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def build(cls, cfg: DataConfig) -> Teacher:
        """Weights from ``cfg.seed`` and calibration statistics."""
        params = teacher_weights(cfg)
        mean, std = teacher_stats(cfg, params)
        return cls(cfg, params, np.asarray(mean), np.asarray(std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardised noiseless targets (rows x d_out, float64) of ``x`` (rows x d_in)."""
        return (teacher_forward(self.params, x, self.cfg.activation) - self.mean) / self.std


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


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def shard_names(split: str, index: int) -> tuple[str, str]:
    """File names (x, y) of shard ``index`` of ``split``."""
    return f"{split}-x-{index:05d}.npy", f"{split}-y-{index:05d}.npy"


class _HashingWriter:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.sha = fh, hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        return self.fh.write(b)


def write_npy_atomic(path: Path, arr: np.ndarray) -> str:
    """Write ``arr`` as ``.npy`` (format 1.0) via a temporary file + rename; return its sha256."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            w = _HashingWriter(fh)
            np.lib.format.write_array(w, np.ascontiguousarray(arr), version=(1, 0))  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return w.sha.hexdigest()


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    """Hex sha256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def write_shard(
    cfg: DataConfig, out: Path, split: str, index: int, teacher: Teacher | None = None
) -> dict[str, Any]:
    """Generate and atomically write one shard; return its manifest record
    ``{x, y, rows, sha256_x, sha256_y}``."""
    x, y = make_shard(cfg, split, index, teacher)
    fx, fy = shard_names(split, index)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sx = write_npy_atomic(out / fx, x)
    sy = write_npy_atomic(out / fy, y)
    return {"x": fx, "y": fy, "rows": int(x.shape[0]), "sha256_x": sx, "sha256_y": sy}


def _config_dict(cfg: DataConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _shard_ok(out: Path, rec: dict[str, Any]) -> bool:
    for key in ("x", "y"):
        f = out / rec[key]
        if not f.is_file() or sha256_file(f) != rec[f"sha256_{key}"]:
            return False
    return True


def _existing_state(out: Path) -> dict[str, Any] | None:
    for name in (MANIFEST, PARTIAL):
        f = out / name
        if f.is_file():
            try:
                return json.loads(f.read_text())
            except json.JSONDecodeError:
                continue
    return None


def _build_manifest(
    cfg: DataConfig, teacher: Teacher, records: dict[str, list[dict[str, Any] | None]]
) -> dict[str, Any]:
    spec = cfg.teacher_spec()
    spec["output_mean"] = [float(v) for v in teacher.mean]
    spec["output_std"] = [float(v) for v in teacher.std]
    return {
        "format": FORMAT,
        "d_in": cfg.d_in,
        "d_out": cfg.d_out,
        "seed": cfg.seed,
        "noise": cfg.noise,
        "dtype": "float32",
        "teacher": spec,
        "config": _config_dict(cfg),
        "generator": {
            "bit_generator": "PCG64",
            "streams": "np.random.SeedSequence(entropy=seed, spawn_key=(purpose, index)); "
            "purpose train=0 (index=shard), val=1 (index=shard), teacher=2, calibration=3, "
            "test=5 (index=shard); "
            "per shard: x = standard_normal((rows, d_in)) then eps = standard_normal((rows, d_out))",
            "targets": "y = round(((teacher(x) - output_mean) / output_std + noise * eps) / quantum) "
            "* quantum, teacher in float64, cast to float32",
            "quantum": cfg.quantum,
        },
        "splits": {
            split: {
                "rows": cfg.split_rows(split),
                "shards": [r for r in records[split] if r is not None],
            }
            for split in SPLITS
        },
    }


def generate(
    cfg: DataConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    order: Sequence[tuple[str, int]] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate (or finish, or confirm) the dataset of ``cfg`` in ``out``; return the manifest.

    Shards are generated one at a time (memory: one shard plus the teacher). Already finished
    shards recorded in ``manifest.json`` / ``.manifest.partial.json`` whose files still have the
    recorded sha256 are kept; everything else is (re)written atomically. ``manifest.json`` is
    written last.

    Args:
        cfg: dataset configuration.
        out: output folder (created).
        overwrite: allow replacing a dataset of a *different* configuration in ``out``.
        order: optional explicit order of ``(split, shard index)`` to generate (must cover all
            shards; the result does not depend on it).
        progress: print one line per shard to stderr.

    Raises:
        ValueError: ``out`` holds a different dataset and ``overwrite`` is false.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    want = _config_dict(cfg)
    state = _existing_state(out)
    known: dict[tuple[str, int], dict[str, Any]] = {}
    if state is not None:
        have = state.get("config")
        if isinstance(have, dict) and "n_test" not in have:  # made before the test split existed:
            have = {**have, "n_test": want["n_test"]}  # same train/val bytes, add the test shards
        if have != want:
            if not overwrite:
                diff = sorted(
                    k
                    for k in set(want) | set(have or {})
                    if (have or {}).get(k, "<missing>") != want.get(k)
                )
                raise ValueError(
                    f"{out} already holds a dataset with a different configuration "
                    f"(differs in {diff}); use another --out or --overwrite"
                )
            for f in out.glob("*-[xy]-*.npy"):
                f.unlink()
            for name in (MANIFEST, PARTIAL):
                (out / name).unlink(missing_ok=True)
        else:
            for split in SPLITS:
                for rec in state.get("splits", {}).get(split, {}).get("shards", []):
                    idx = int(rec["x"].split("-")[-1].split(".")[0])
                    known[(split, idx)] = rec

    plan = [(split, i) for split in SPLITS for i in range(len(cfg.shard_sizes(split)))]
    if order is not None:
        if sorted(order) != sorted(plan):
            raise ValueError(f"order must list every (split, index) once: {plan}")
        plan = list(order)
    teacher = Teacher.build(cfg)
    records: dict[str, list[dict[str, Any] | None]] = {
        s: [None] * len(cfg.shard_sizes(s)) for s in SPLITS
    }
    changed = (out / MANIFEST).is_file() is False
    for n_done, (split, i) in enumerate(plan, 1):
        rec = known.get((split, i))
        t0 = time.perf_counter()
        if rec is not None and _shard_ok(out, rec):
            what = "kept"
        else:
            rec = write_shard(cfg, out, split, i, teacher)
            what = "wrote"
            changed = True
            records[split][i] = rec
            write_json_atomic(out / PARTIAL, _build_manifest(cfg, teacher, records))
        records[split][i] = rec
        if progress:
            print(
                f"phantom-data: [{n_done}/{len(plan)}] {what} {split} shard {i} "
                f"({rec['rows']} rows, {time.perf_counter() - t0:.2f}s)",
                file=sys.stderr,
            )
    manifest = _build_manifest(cfg, teacher, records)
    if changed or _existing_state(out) != manifest:
        write_json_atomic(out / MANIFEST, manifest)
    (out / PARTIAL).unlink(missing_ok=True)
    return manifest


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check ``path/manifest.json``.

    Raises:
        FileNotFoundError: no manifest (names the path; an unfinished generation is reported).
        ValueError: unknown format.
    """
    path = Path(path)
    f = path / MANIFEST
    if not f.is_file():
        hint = (
            " (generation unfinished: rerun phantom-data generate)"
            if (path / PARTIAL).exists()
            else ""
        )
        raise FileNotFoundError(f"dataset manifest not found: {f}{hint}")
    manifest = json.loads(f.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{f}: format {manifest.get('format')!r} is not {FORMAT!r}")
    return manifest


def verify(path: str | Path) -> dict[str, Any]:
    """Check every shard file against the manifest's sha256 (and shapes).

    Returns:
        ``{"files": int, "rows": {split: rows}, "bytes": int}`` when everything matches.

    Raises:
        FileNotFoundError: manifest or a shard file is missing (names the first missing file).
        ValueError: sha256 mismatch or wrong row counts (names every bad file).
    """
    path = Path(path)
    manifest = load_manifest(path)
    bad: list[str] = []
    files = 0
    nbytes = 0
    rows: dict[str, int] = {}
    for split, info in manifest["splits"].items():
        total = 0
        for rec in info["shards"]:
            for key in ("x", "y"):
                f = path / rec[key]
                if not f.is_file():
                    raise FileNotFoundError(f"shard file missing: {f}")
                files += 1
                nbytes += f.stat().st_size
                if sha256_file(f) != rec[f"sha256_{key}"]:
                    bad.append(f"{f} (sha256 mismatch)")
            total += rec["rows"]
        if total != info["rows"]:
            bad.append(f"{split}: shards hold {total} rows, manifest says {info['rows']}")
        rows[split] = total
    if bad:
        raise ValueError("dataset corrupt: " + "; ".join(bad))
    return {"files": files, "rows": rows, "bytes": nbytes}


def _open_npy(f: Path, rows: int, cols: int) -> np.ndarray:
    if not f.is_file():
        raise FileNotFoundError(f"shard file missing: {f}")
    try:
        arr = np.load(f, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read shard {f}: {exc}") from exc
    if arr.dtype != np.float32 or arr.shape != (rows, cols):
        raise ValueError(
            f"shard {f} has dtype {arr.dtype} shape {arr.shape}; expected float32 {(rows, cols)}"
        )
    return arr


class ShardedDataset:
    """One split of a dataset folder, memory-mapped shard by shard.

    Attributes:
        rows: rows in the split.
        d_in, d_out: feature sizes.
        manifest: the parsed manifest.

    Opening checks that every shard exists with the expected shape (no hashing; use
    :func:`verify`). Picklable (memory maps are reopened lazily in the receiving process).
    """

    def __init__(self, path: str | Path, split: str = "train") -> None:
        _check_split(split)
        self.path = Path(path)
        self.split = split
        self.manifest = load_manifest(self.path)
        if split not in self.manifest["splits"]:
            raise ValueError(f"{self.path / MANIFEST} has no split {split!r}")
        info = self.manifest["splits"][split]
        self._records: list[dict[str, Any]] = list(info["shards"])
        self.d_in: int = int(self.manifest["d_in"])
        self.d_out: int = int(self.manifest["d_out"])
        sizes = [int(r["rows"]) for r in self._records]
        self.rows: int = int(sum(sizes))
        if self.rows != int(info["rows"]):
            raise ValueError(
                f"{self.path / MANIFEST}: {split} shards hold {self.rows} rows, "
                f"manifest says {info['rows']}"
            )
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._maps: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._open()

    def _open(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._maps is None:
            self._maps = [
                (
                    _open_npy(self.path / r["x"], int(r["rows"]), self.d_in),
                    _open_npy(self.path / r["y"], int(r["rows"]), self.d_out),
                )
                for r in self._records
            ]
        return self._maps

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = None
        return state

    def __len__(self) -> int:
        return self.rows

    def __repr__(self) -> str:
        return (
            f"ShardedDataset({str(self.path)!r}, {self.split!r}, rows={self.rows}, "
            f"d_in={self.d_in}, d_out={self.d_out}, shards={len(self._records)})"
        )

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``indices`` (any order, repeats allowed) as float32 tensors
        ``x`` (len x d_in) and ``y`` (len x d_out), in the order given."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.rows):
            raise IndexError(f"row index out of range [0, {self.rows}) in {self.split}")
        maps = self._open()
        x = np.empty((idx.size, self.d_in), dtype=np.float32)
        y = np.empty((idx.size, self.d_out), dtype=np.float32)
        shard = np.searchsorted(self.offsets, idx, side="right") - 1
        for s in np.unique(shard):
            sel = np.nonzero(shard == s)[0]
            local = idx[sel] - self.offsets[s]
            mx, my = maps[s]
            x[sel] = mx[local]
            y[sel] = my[local]
        return torch.from_numpy(x), torch.from_numpy(y)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole split loaded into memory as float32 numpy arrays (small datasets only)."""
        x, y = self.get_batch(np.arange(self.rows))
        return x.numpy(), y.numpy()


def steps_per_epoch(rows: int, batch_size: int, drop_last: bool = True) -> int:
    """Batches per epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return rows // batch_size if drop_last else -(-rows // batch_size)


def epoch_permutation(rows: int, epoch: int, seed: int) -> np.ndarray:
    """Row order of ``epoch``: a permutation of ``range(rows)`` depending only on
    ``(rows, seed, epoch)`` (stream ``SeedSequence(seed, spawn_key=(4, epoch))``)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return _rng(seed, "epoch", epoch).permutation(rows)


def iterate_batches(
    dataset: ShardedDataset,
    batch_size: int,
    epoch: int,
    seed: int,
    drop_last: bool = True,
    start_step: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(x, y)`` (batch_size x d_in, batch_size x d_out) of one epoch.

    The order is :func:`epoch_permutation` ``(dataset.rows, epoch, seed)``; batch ``i`` is rows
    ``perm[i*batch_size:(i+1)*batch_size]``. ``start_step`` skips the first batches without
    reading them, so a resumed run gets exactly the remaining batches of the epoch.
    """
    n_steps = steps_per_epoch(dataset.rows, batch_size, drop_last)
    if not 0 <= start_step <= n_steps:
        raise ValueError(f"start_step {start_step} outside [0, {n_steps}] for this epoch")
    perm = epoch_permutation(dataset.rows, epoch, seed)
    for i in range(start_step, n_steps):
        yield dataset.get_batch(perm[i * batch_size : (i + 1) * batch_size])


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``phantom-data``."""
    ap = cli.parser("phantom-data", __doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = DataConfig()
    g = sub.add_parser("generate", formatter_class=ap.formatter_class, help="generate (or resume) a dataset folder")
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--d-in", type=int, default=d.d_in)
    g.add_argument("--d-out", type=int, default=d.d_out)
    g.add_argument("--teacher-width", type=int, default=d.teacher_width)
    g.add_argument("--teacher-layers", type=int, default=d.teacher_layers)
    g.add_argument("--activation", choices=ACTIVATIONS, default=d.activation)
    g.add_argument("--teacher-gain", type=float, default=d.teacher_gain)
    g.add_argument("--teacher-rank", type=int, default=d.teacher_rank, help="0 = full rank")
    g.add_argument("--n-train", type=int, default=d.n_train)
    g.add_argument("--n-val", type=int, default=d.n_val)
    g.add_argument("--n-test", type=int, default=None,
                   help="rows of the held-out test split (default: --n-val; 0: none)")
    g.add_argument("--shard-rows", type=int, default=d.shard_rows)
    g.add_argument("--noise", type=float, default=d.noise)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--overwrite", action="store_true", help="replace a different dataset")
    g.add_argument("--quiet", action="store_true")
    v = sub.add_parser("verify", formatter_class=ap.formatter_class, help="check every shard's sha256 against the manifest")
    v.add_argument("dir", type=Path)
    i = sub.add_parser("info", formatter_class=ap.formatter_class, help="print the manifest summary")
    i.add_argument("dir", type=Path)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-data`` entry point."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            cfg = DataConfig(
                d_in=args.d_in,
                d_out=args.d_out,
                teacher_width=args.teacher_width,
                teacher_layers=args.teacher_layers,
                activation=args.activation,
                teacher_gain=args.teacher_gain,
                teacher_rank=args.teacher_rank,
                n_train=args.n_train,
                n_val=args.n_val,
                n_test=args.n_test,
                shard_rows=args.shard_rows,
                noise=args.noise,
                seed=args.seed,
            )
            t0 = time.perf_counter()
            m = generate(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
            n = sum(len(s["shards"]) for s in m["splits"].values())
            print(
                f"{args.out}: train {m['splits']['train']['rows']} rows, "
                f"val {m['splits']['val']['rows']} rows, "
                f"test {m['splits']['test']['rows']} rows, {n} shards "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        elif args.command == "verify":
            r = verify(args.dir)
            print(f"{args.dir}: OK ({r['files']} files, {r['bytes']} bytes, rows {r['rows']})")
        else:
            m = load_manifest(args.dir)
            summary = {k: m[k] for k in ("format", "d_in", "d_out", "seed", "noise", "dtype")}
            summary["teacher"] = {
                k: v for k, v in m["teacher"].items() if k not in ("output_mean", "output_std")
            }
            summary["rows"] = {s: v["rows"] for s, v in m["splits"].items()}
            summary["shards"] = {s: len(v["shards"]) for s, v in m["splits"].items()}
            print(json.dumps(summary, indent=2))
    except (FileNotFoundError, ValueError) as exc:
        print(f"phantom-data: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
