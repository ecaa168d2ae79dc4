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

Modules: :mod:`.config` (DataConfig, constants, random streams), :mod:`.teacher` (teacher,
one shard's arrays), :mod:`.shards` (writing, manifest, :func:`generate`), :mod:`.dataset`
(reading, batches), :mod:`.cli` (``phantom-data``). Every public name is re-exported here.
"""

from phantom_parallel.data.cli import build_parser, main
from phantom_parallel.data.config import (
    ACTIVATIONS,
    FORMAT,
    MANIFEST,
    PARTIAL,
    SPLITS,
    DataConfig,
)
from phantom_parallel.data.dataset import (
    ShardedDataset,
    epoch_permutation,
    iterate_batches,
    load_manifest,
    steps_per_epoch,
    verify,
)
from phantom_parallel.data.shards import (
    generate,
    sha256_file,
    shard_names,
    write_npy_atomic,
    write_shard,
)
from phantom_parallel.data.teacher import (
    Teacher,
    make_shard,
    teacher_forward,
    teacher_stats,
    teacher_weights,
)

__all__ = [
    "ACTIVATIONS", "FORMAT", "MANIFEST", "PARTIAL", "SPLITS", "DataConfig", "ShardedDataset",
    "Teacher", "build_parser", "epoch_permutation", "generate", "iterate_batches",
    "load_manifest", "main", "make_shard", "sha256_file", "shard_names", "steps_per_epoch",
    "teacher_forward", "teacher_stats", "teacher_weights", "verify", "write_npy_atomic",
    "write_shard",
]
