"""``phantom-train``'s command line: the flags, and their validation before any work starts
(:class:`InputError`: one line naming the flag, file or key; exit status 2).

Also the settings a resumed run must share with its checkpoint (:data:`RESUME_KEYS`) and the
torch dtypes the ``--dtype`` names stand for (:data:`DTYPES`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import torch

from phantom_parallel import cli, constants
from phantom_parallel.atomic import folder_problem, read_json
from phantom_parallel.checkpoint import recorded_differences
from phantom_parallel.comm import TIMINGS
from phantom_parallel.data import ShardedDataset, load_manifest
from phantom_parallel.distributed import read_launch_env
from phantom_parallel.energy.sources import POWER_SOURCES, source_error
from phantom_parallel.evals import check_eval_every, steps_per_epoch_of
from phantom_parallel.models import ACTIVATIONS, STRATEGIES, validate_layout
from phantom_parallel.param_init import PP_INITS
from phantom_parallel.train_record import read_run_manifest

DTYPES = {name: getattr(torch, name) for name in constants.DTYPES}
"""``--dtype`` name -> torch dtype (the names are :data:`phantom_parallel.constants.DTYPES`)."""
# Settings that must not change when a run resumes (names as in the CLI).
# ``data_sha256`` is not a flag: the identity of the data in ``--data`` (:func:`dataset_sha256`),
# which :func:`validate` adds, so that a regenerated dataset in the same folder is not resumed on.
RESUME_KEYS = ("strategy", "width", "layers", "ghosts", "batch_size", "optimizer", "lr", "seed",
               "dtype", "activation", "data", "momentum", "pp_init", "eval_every", "data_sha256")
# What a key meant in checkpoints written before it was recorded (they resume as such); None:
# not known, not compared.
LEGACY_RESUME = {"pp_init": "fan-in", "eval_every": 0, "data_sha256": None}


def parse_args(argv: list[str] | None, description: str | None) -> argparse.Namespace:
    """The parsed flags of ``argv`` (None: ``sys.argv``); ``description`` heads ``--help``."""
    p = cli.parser("phantom-train", description)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (phantom-data generate)")
    p.add_argument("--run-dir", type=Path, required=True, help="run folder (created; resumed if present)")
    p.add_argument("--strategy", choices=STRATEGIES, required=True)
    p.add_argument("--width", type=int, required=True, help="hidden width n (divisible by ranks p)")
    p.add_argument("--layers", type=int, default=2, help="number L of hidden n x n layers")
    p.add_argument("--ghosts", type=int, default=None,
                   help="ghost neurons k per rank (pp; 1 <= k <= n/p; other strategies ignore it, "
                        "but it must be >= 1 and a resume must repeat it)")
    p.add_argument("--pp-init", choices=PP_INITS, default=PP_INITS[0],
                   help="phantom-layer init (pp): variance-preserving (default) or the old fan-in rule")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="gelu", help="hidden activation")
    p.add_argument("--batch-size", type=int, default=64, help="samples per optimizer step (global)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training split")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimizer steps (a larger value, or a larger "
                        "--epochs, goes on with a finished run)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam", help="optimizer")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--seed", type=int, default=0, help="init, data order (>= 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameters and activations")
    p.add_argument("--device", default="cpu", help="cpu or cuda (ROCm GPUs are cuda in torch)")
    p.add_argument("--backend", default="auto", help="auto, gloo or nccl (RCCL on ROCm)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads per rank")
    p.add_argument("--eval-every", type=int, default=0,
                   help="validate every N steps into evals.csv (0: only at epoch ends; "
                        "1 <= N <= steps per epoch)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also checkpoint every N steps (0: only at the end of each epoch)")
    p.add_argument("--power-source", choices=POWER_SOURCES, default="auto", help="power sensor to sample")
    p.add_argument("--power-interval-ms", type=float, default=100.0, help="sampler poll interval (ms)")
    p.add_argument("--comm-timing", choices=TIMINGS, default="events",
                   help="how GPU collectives are timed: device events (default), device-sync "
                        "(diagnostic: serialises the step) or off (counts only)")
    p.add_argument("--timeout-s", type=float, default=300.0,
                   help="collective timeout: a rank waiting longer on a dead peer fails")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on rank 0 (a log line every --log-every steps instead)")
    p.add_argument("--log-every", type=int, default=100,
                   help="with --no-progress: rank 0 logs step, loss and step time every N steps")
    p.error = _parser_error(p)  # type: ignore[method-assign]
    return p.parse_args(argv)


def _parser_error(p: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    """argparse's usage and error lines, printed by rank 0 only under a launcher (every rank
    parses the same command line); exit status 2."""
    def error(message: str) -> NoReturn:
        if read_launch_env().rank == 0:
            p.print_usage(sys.stderr)
            sys.stderr.write(f"{p.prog}: error: {message}\n")
        raise SystemExit(2)

    return error


class InputError(Exception):
    """Bad input, found before anything is written: a one-line message naming the flag, file or
    key (``phantom-train`` exits with status 2 and no traceback).

    ``scope`` says which ranks print it: ``"job"`` (every rank finds the same: rank 0 prints),
    ``"host"`` (the same on every rank of a host: each host's local rank 0), ``"rank"`` (this
    rank's own problem: it prints). An empty message (a rank stopping because another failed)
    is not printed.
    """

    def __init__(self, message: str, scope: str = "job") -> None:
        super().__init__(message)
        self.scope = scope

    def report(self, rank: int, local_rank: int) -> int:
        """Print the message where ``scope`` says (stderr); return the exit status, 2. A rank
        that prints nothing waits :data:`~phantom_parallel.cli.REFUSE_DELAY_S` first: the
        first rank to exit makes torchrun end the others, which must not be the one that
        has the line still to print."""
        shown = {"job": rank == 0, "host": local_rank == 0, "rank": True}[self.scope]
        if shown and str(self):
            sys.stderr.write(f"phantom-train: error: {self}\n")  # one write: no interleaving
            sys.stderr.flush()
        else:
            time.sleep(cli.REFUSE_DELAY_S)
        return 2


def _bad(msg: str, scope: str = "job") -> NoReturn:
    raise InputError(msg, scope)


def validate(args: argparse.Namespace, world_size: int) -> None:
    """Reject bad input before any work starts (:class:`InputError` naming the flag and value):
    the numbers, the layout, device and backend, the dataset (manifest and shards), the run
    folder, and a named ``--power-source`` (probed on this host). Sets ``args.data_sha256``, the
    identity of the data (:func:`dataset_sha256`), which a resumed run must share."""
    _check_numbers(args)
    try:
        validate_layout(args.strategy, args.width, world_size, args.ghosts)
    except ValueError as err:
        _bad(cli.layout_error(err))
    if (msg := cli.device_error(args.device, args.backend)) is not None:
        _bad(msg)
    manifest = _check_data(args.data)
    rows = int(manifest["splits"]["train"]["rows"])
    args.data_sha256 = dataset_sha256(manifest)
    if args.batch_size > rows:
        _bad(f"--batch-size={args.batch_size} exceeds the {rows} training rows of --data={args.data}")
    if args.strategy == "fsdp" and args.batch_size % world_size:
        _bad(f"--batch-size={args.batch_size} is not divisible by the number of ranks p={world_size} "
             "(fsdp splits each batch over the ranks)")
    spe = steps_per_epoch_of(args.data, args.batch_size)
    if (msg := check_eval_every(args.eval_every, spe)) is not None:
        _bad(msg)
    if (problem := folder_problem(args.run_dir)) is not None:
        _bad(f"--run-dir={args.run_dir}: {problem}")
    _refuse_other_data(args)
    _refuse_a_different_finished_run(args, world_size)
    if (msg := source_error(args.power_source)) is not None:
        _bad(msg, "host")  # the sensors of this host


def _check_numbers(args: argparse.Namespace) -> None:
    """Counts, rates and intervals: each flag's own range (None: not given); pp's ghosts."""
    def flags(*keys: str) -> dict[str, float | None]:
        return {f"--{k.replace('_', '-')}": getattr(args, k) for k in keys}

    for msg in (
        cli.minimum_error(flags("width", "batch_size", "epochs", "max_steps", "threads", "ghosts"), 1),
        cli.minimum_error(flags("layers", "log_every", "checkpoint_every", "lr", "seed"), 0),
        cli.minimum_error(flags("momentum") if args.optimizer == "sgd" else {}, 0),
        cli.minimum_error(flags("timeout_s", "power_interval_ms"), 0, strict=True),
        cli.ghosts_error(args.strategy, args.ghosts),
    ):
        if msg is not None:
            _bad(msg)


def _check_data(data: Path) -> dict[str, Any]:
    """The manifest of dataset folder ``data``, checked, after checking that every shard of its
    splits opens with the recorded shape (no hashing: ``phantom-data verify``)."""
    if not (data / "manifest.json").exists():
        _bad(f"--data={data}: no manifest.json there (generate it with phantom-data generate)")
    try:
        manifest = load_manifest(data)
        for split in manifest["splits"]:
            ShardedDataset(data, split)
        return manifest
    except (OSError, ValueError) as err:
        _bad(f"--data={data}: {err}")


def dataset_sha256(manifest: dict[str, Any]) -> str:
    """The identity of the data a run trains and validates on: sha256 of the train and val
    shards' sha256 (equal for the same bytes, whatever the folder; changed by regenerating
    another configuration). The test split, drawn from its own random streams and read only
    after the last step, is not part of it: a run resumes on a dataset regenerated with
    another ``--n-test`` and reports its test loss on that split."""
    shards = {split: [[r["sha256_x"], r["sha256_y"]] for r in info["shards"]]
              for split, info in sorted(manifest["splits"].items()) if split != "test"}
    return hashlib.sha256(json.dumps(shards, sort_keys=True).encode()).hexdigest()


def _refuse_other_data(args: argparse.Namespace) -> None:
    """A run folder whose checkpoint was trained on other data than ``--data`` now holds (the
    folder regenerated with another configuration) is not resumed, nor extended. A checkpoint
    that cannot be read is left to the resume, which names it."""
    try:
        had = read_json(args.run_dir / "checkpoints" / "latest.json")["config"].get("data_sha256")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return
    if had is not None and had != args.data_sha256:
        _bad(f"--data={args.data}: holds other data than the run in --run-dir={args.run_dir} was "
             f"trained on (dataset sha256 {args.data_sha256[:12]}, the run's {str(had)[:12]}; "
             "regenerated?): use the dataset it was trained on or another --run-dir")


def _refuse_a_different_finished_run(args: argparse.Namespace, world_size: int) -> None:
    """A finished run folder (summary.json) is not redone; relaunching it with other settings
    is an error naming the differing keys (rather than "nothing to do")."""
    if not (args.run_dir / "summary.json").exists():
        return
    try:
        done = read_run_manifest(args.run_dir)
    except ValueError as err:
        _bad(f"--run-dir={args.run_dir}: {err}")
    if done is None:
        return
    now = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    differ = [f"{k}={had!r} (this launch: {value!r})" for k, had, value in recorded_differences(
        done["config"], {k: now[k] for k in RESUME_KEYS}, LEGACY_RESUME)]
    if done.get("world_size") != world_size:
        differ.append(f"world size {done.get('world_size')} (this launch: {world_size})")
    if differ:
        _bad(f"--run-dir={args.run_dir} holds a finished run with other settings: "
             f"{', '.join(differ)}; use another --run-dir")
