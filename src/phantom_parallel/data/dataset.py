"""Reading a dataset folder: the manifest, sha256 verification, the memory-mapped
:class:`ShardedDataset` and deterministic batches (:func:`iterate_batches`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phantom_parallel.atomic import read_json
from phantom_parallel.data.config import MANIFEST, PARTIAL, _check_split, _rng, check_manifest
from phantom_parallel.data.shards import sha256_file


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check ``path/manifest.json``.

    Raises:
        FileNotFoundError: no manifest (names the path; an unfinished generation is reported).
        ValueError: not JSON, unknown format or a missing/mistyped key (one line naming the
            file and the key).
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
    return check_manifest(f, read_json(f))


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
