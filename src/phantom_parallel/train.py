"""``phantom-train``: one FFN training run (serial, tp, pp, dtensor or fsdp) into one run folder.

Launch with ``torchrun --standalone --nproc-per-node P -m phantom_parallel.train ...`` locally
or ``srun -n P python -m phantom_parallel.train ...`` under SLURM (ranks and the rendezvous
address are read from either environment). Rerunning the same command resumes from the run
folder's last checkpoint and ends with exactly the weights and losses of an uninterrupted run;
a finished run (``summary.json`` present) is not redone, but a larger ``--max-steps`` or
``--epochs`` goes on with it from its last checkpoint (its summary is then rewritten).
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.distributed as dist

from phantom_parallel import train_args
from phantom_parallel.distributed import init_distributed, read_launch_env

# The names other code imports from ``phantom_parallel.train`` (each module holds one job).
from phantom_parallel.energy.sources import POWER_SOURCES
from phantom_parallel.evals import evaluate
from phantom_parallel.train_args import DTYPES, LEGACY_RESUME, RESUME_KEYS, InputError, validate
from phantom_parallel.train_counts import count_distinct_params, count_matmul_flops
from phantom_parallel.train_loop import run
from phantom_parallel.train_record import cpu_model, git_revision, usable_cores
from phantom_parallel.train_setup import make_optimizer

__all__ = [
    "DTYPES", "LEGACY_RESUME", "POWER_SOURCES", "RESUME_KEYS", "InputError", "count_distinct_params",
    "count_matmul_flops", "cpu_model", "evaluate", "git_revision", "main", "make_optimizer",
    "parse_args", "run", "usable_cores", "validate",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``phantom-train``'s flags from ``argv`` (None: ``sys.argv``), this module's docstring
    as the ``--help`` description."""
    return train_args.parse_args(argv, __doc__)


def main(argv: list[str] | None = None) -> int:
    """The ``phantom-train`` console script: parse, validate, join the ranks, run. Bad input
    (:class:`InputError`) ends it with one line on stderr and exit status 2."""
    args = parse_args(argv)
    env = read_launch_env()
    try:
        validate(args, env.world_size)
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        comm = init_distributed(env, args.backend, args.device, args.timeout_s, args.comm_timing)
        try:
            return run(args, env, comm)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    except InputError as err:
        return err.report(env.rank, env.local_rank)


if __name__ == "__main__":
    sys.exit(main())
