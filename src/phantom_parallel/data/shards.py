"""Writing a dataset folder: atomic ``.npy`` shards with their sha256, the manifest, and the
resumable :func:`generate` (one shard at a time, any order)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from phantom_parallel.atomic import folder_problem, read_json, write_json_atomic
from phantom_parallel.data.config import (
    FORMAT,
    MANIFEST,
    PARTIAL,
    SPLITS,
    DataConfig,
    check_manifest,
)
from phantom_parallel.data.device import check_device
from phantom_parallel.data.teacher import Teacher, make_shard


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
    ``{x, y, rows, sha256_x, sha256_y}``, plus ``device`` when the teacher ran on a GPU."""
    x, y = make_shard(cfg, split, index, teacher)
    fx, fy = shard_names(split, index)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sx = write_npy_atomic(out / fx, x)
    sy = write_npy_atomic(out / fy, y)
    rec = {"x": fx, "y": fy, "rows": int(x.shape[0]), "sha256_x": sx, "sha256_y": sy}
    if teacher is not None and teacher.device != "cpu":
        rec["device"] = teacher.device  # its targets may differ from the CPU's by one quantum
    return rec


def _config_dict(cfg: DataConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _shard_ok(out: Path, rec: dict[str, Any]) -> bool:
    for key in ("x", "y"):
        f = out / rec[key]
        if not f.is_file() or sha256_file(f) != rec[f"sha256_{key}"]:
            return False
    return True


def _existing_state(out: Path) -> dict[str, Any] | None:
    """What ``out`` already holds: its manifest, else the progress file of an interrupted
    generation (written atomically like the manifest), else None.

    Raises:
        ValueError: that file is not a readable manifest (one line naming it, and the least
            destructive way on).
    """
    fixes = {MANIFEST: "restore it, or use another --out (--overwrite deletes the dataset in "
                       f"{out} and generates this one)",
             PARTIAL: "it records the shards an interrupted generation finished: restore it to "
                      "keep them, or remove it to generate every shard again (--overwrite also "
                      "deletes them first)"}
    for name, fix in fixes.items():
        f = out / name
        if f.is_file():
            try:
                return check_manifest(f, read_json(f))
            except ValueError as exc:
                raise ValueError(f"{exc}; {fix}") from None
    return None


def _shard_index(split: str, rec: dict[str, Any]) -> int | None:
    """Index of the shard a manifest record describes (None: not one of ours)."""
    m = re.fullmatch(rf"{split}-x-(\d+)\.npy", rec["x"])
    return None if m is None else int(m.group(1))


def _make_dir(out: Path) -> None:
    """Create the dataset folder ``out``; ValueError naming it when that is impossible."""
    problem = folder_problem(out)
    try:
        if problem is None:
            out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = str(exc.strerror or exc)
    if problem is not None:
        raise ValueError(f"cannot create the dataset folder {out}: {problem}")


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
    device: str = "cpu",
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
        device: where the teacher's forward pass runs (``cpu``, ``cuda``, ``cuda:N``); checked
            before anything is written. The CPU result is the reference; see
            :mod:`phantom_parallel.data.device` for the cross-device tolerance.

    Raises:
        ValueError: before anything is written: ``out`` holds a different dataset, or a
            manifest or progress file that cannot be read, and ``overwrite`` is false;
            ``device`` cannot be used here; ``out`` cannot be created.
    """
    plan = [(split, i) for split in SPLITS for i in range(len(cfg.shard_sizes(split)))]
    if order is not None:
        if sorted(order) != sorted(plan):
            raise ValueError(f"order must list every (split, index) once: {plan}")
        plan = list(order)
    check_device(device)
    out = Path(out)
    _make_dir(out)
    want = _config_dict(cfg)
    try:
        state = _existing_state(out)
        have = None if state is None else state.get("config")
    except ValueError as exc:
        if not overwrite:
            raise
        state, have = {}, f"unreadable: {exc}"
    known: dict[tuple[str, int], dict[str, Any]] = {}
    if state is not None:
        if isinstance(have, dict) and "n_test" not in have:  # made before the test split existed:
            have = {**have, "n_test": want["n_test"]}  # same train/val bytes, add the test shards
        if have != want:
            if not overwrite:
                theirs = have if isinstance(have, dict) else {}
                diff = sorted(
                    k for k in set(want) | set(theirs) if theirs.get(k, "<missing>") != want.get(k)
                )
                raise ValueError(
                    f"{out} already holds a dataset with a different configuration "
                    f"(differs in {diff}); use another --out or --overwrite"
                )
            for f in out.glob("*-[xy]-*.npy"):
                f.unlink()
            for name in (MANIFEST, PARTIAL):
                (out / name).unlink(missing_ok=True)
            state = None
        else:
            for split in SPLITS:
                for rec in state["splits"].get(split, {}).get("shards", []):
                    idx = _shard_index(split, rec)
                    if idx is not None:
                        known[(split, idx)] = rec

    teacher = Teacher.build(cfg, device)
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
    if changed or state != manifest:
        write_json_atomic(out / MANIFEST, manifest)
    (out / PARTIAL).unlink(missing_ok=True)
    return manifest
