"""``phantom-bench``: step time of ``pp``, ``tp`` and ``dtensor`` side by side in one run.

Launch on ``p >= 2`` ranks, e.g.::

    torchrun --standalone --nproc-per-node 2 -m phantom_parallel.bench \\
        --width 1024 --layers 4 --ghosts 16 --batch 64 --steps 30 --warmup 5 --json out.json

What one run does (every rank, same shapes, same ``p``):

1. **Microbenchmarks** (never the step times; :mod:`phantom_parallel.bench_micro`): GEMMs of the
   per-rank layer shapes on rank 0 alone and on all ranks at once, elementwise kernels and
   Adam steps on all ranks at once, and each collective of a step right after a short compute
   burst on all ranks.
2. **Interleaved training steps** (:mod:`phantom_parallel.bench_steps`): forward + MSE loss +
   backward + Adam step on a fixed synthetic batch, round-robin over ``pp -> tp -> dtensor``
   for several rounds so that machine noise hits all strategies alike. Per step: wall time (max
   over ranks), communication time from the ledger (pp/tp; mean over ranks), compute = step -
   comm, and forward / backward / optimizer phases.
3. **Analysis** (rank 0, :mod:`phantom_parallel.bench_analysis`): the project's one time model
   (:func:`phantom_parallel.timing.step_time` on the ``--hardware`` profile) with its
   communication and compute constants fitted to the microbenchmarks, then re-fitted on this
   run's TP steps to predict PP out of sample; medians, IQRs, ratios PP/TP and TP/DTensor, and
   PASS/MISS for the two targets: PP step time within 15 % of the TP-calibrated prediction, our
   TP no slower than DTensor TP.
4. **Report** (:mod:`phantom_parallel.bench_report`): text tables and ``--json``.

Times are seconds, rates FLOP/s or bytes/s, sizes bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from phantom_parallel import __version__, cli, hardware
from phantom_parallel.bench_analysis import analyse, rate_through_origin
from phantom_parallel.bench_micro import (
    IN_STEP_BURST_GEMMS,
    bench_collectives_in_step,
    bench_elementwise,
    bench_matmul,
    bench_optimizer,
    gemm_shapes,
    in_step_sizes,
    local_param_shapes,
)
from phantom_parallel.bench_report import format_report, jsonable
from phantom_parallel.bench_steps import (
    BENCH_STRATEGIES,
    StrategyRunner,
    profile_steps,
    run_interleaved,
)
from phantom_parallel.comm import Comm
from phantom_parallel.costs import FFNShape
from phantom_parallel.distributed import init_distributed, read_launch_env
from phantom_parallel.models import ACTIVATIONS, FFNConfig, validate_layout
from phantom_parallel.train import DTYPES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Arguments of ``phantom-bench``."""
    ap = cli.parser(
        "phantom-bench",
        "Step time of pp, tp and dtensor side by side (interleaved) at the same "
        "width and ranks, with the time model's prediction fitted to microbenchmarks of the same run. "
        "Launch with torchrun --nproc-per-node P (P >= 2).",
    )
    ap.add_argument("--width", type=int, default=1024, help="hidden width n (divisible by p)")
    ap.add_argument("--layers", type=int, default=4, help="hidden n x n layers L")
    ap.add_argument("--ghosts", type=int, default=None,
                    help="PP ghosts per rank k (default max(1, n/p/16))")
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=64,
                    help="samples per step B")
    ap.add_argument("--d-in", type=int, default=64, help="input features")
    ap.add_argument("--d-out", type=int, default=8, help="output features")
    ap.add_argument("--activation", choices=sorted(ACTIVATIONS), default="gelu")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per strategy")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per strategy first")
    ap.add_argument("--rounds", type=int, default=5,
                    help="round-robin blocks the timed steps are split into")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--hardware", default="local-cpu",
                    help="hardware profile the time model starts from (config/hardware/NAME.yaml "
                         f"or a path; known: {', '.join(hardware.available())})")
    ap.add_argument("--backend", default="auto", help="auto, gloo or nccl")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per rank (default max(1, cpu_count // world_size))")
    ap.add_argument("--micro-time", type=float, default=0.05,
                    help="seconds per microbenchmark trial")
    ap.add_argument("--micro-trials", type=int, default=5, help="trials per microbenchmark")
    ap.add_argument("--in-step-calls", type=int, default=20,
                    help="calls per trial of each in-step collective microbenchmark")
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="afterwards, profile this many PP and TP steps on rank 0 (torch.profiler)")
    ap.add_argument("--json", type=Path, default=None,
                    help="write every number to this file (missing folders are created; an "
                         "existing file is replaced, atomically)")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="collective timeout, s")
    return ap.parse_args(argv)


def _validate(args: argparse.Namespace, world: int) -> hardware.Profile:
    """Refuse bad flags with one line naming the flag, identically on every rank (said once
    per node: :func:`phantom_parallel.cli.refuse`); returns the ``--hardware`` profile."""
    def bad(msg: str) -> NoReturn:
        cli.refuse("phantom-bench", msg)

    if world < 2:
        bad("needs p >= 2 ranks: torchrun --standalone --nproc-per-node 2 -m phantom_parallel.bench")
    msg = (cli.minimum_error({"--width": args.width, "--batch-size": args.batch,
                              "--steps": args.steps, "--rounds": args.rounds, "--d-in": args.d_in,
                              "--d-out": args.d_out, "--micro-trials": args.micro_trials,
                              "--in-step-calls": args.in_step_calls, "--threads": args.threads},
                             1)
           or cli.minimum_error({"--layers": args.layers, "--warmup": args.warmup,
                                 "--profile-steps": args.profile_steps, "--lr": args.lr}, 0)
           or cli.minimum_error({"--micro-time": args.micro_time, "--timeout-s": args.timeout_s},
                                0, strict=True))
    if msg:
        bad(msg)
    if args.ghosts is None and args.width % world == 0:
        args.ghosts = max(1, args.width // world // 16)
    for s in BENCH_STRATEGIES:
        try:
            validate_layout(s, args.width, world, args.ghosts)
        except ValueError as err:
            bad(cli.layout_error(err))
    args.rounds = min(args.rounds, args.steps)
    err = cli.device_error(args.device, args.backend) or cli.output_error("--json", args.json,
                                                                          mkdir=True)
    if err:
        bad(err)
    try:
        return hardware.load(args.hardware)
    except hardware.ProfileError as err:
        bad(str(err))


def _gather(obj: Any, world: int) -> list[Any]:
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _mean_over_ranks(rows: list[dict[str, Any]], world: int) -> list[dict[str, Any]]:
    """``rows`` (this rank's) with ``seconds`` replaced by the mean over all ranks."""
    every = _gather([r["seconds"] for r in rows], world)
    return [{**r, "seconds": statistics.fmean(x[i] for x in every)} for i, r in enumerate(rows)]


def microbenchmarks(args: argparse.Namespace, comm: Comm, device: torch.device,
                    runners: dict[str, StrategyRunner]) -> dict[str, Any]:
    """Every microbenchmark of one run (all ranks take part; seconds are means over ranks
    except ``matmul``, rank 0 alone, empty on the other ranks)."""
    rank, p = comm.rank, comm.world_size
    dtype, mt, trials = DTYPES[args.dtype], args.micro_time, args.micro_trials
    shapes = gemm_shapes(args.batch, args.width, p, args.ghosts)
    dist.barrier()
    alone = bench_matmul(args.batch, shapes, dtype, device, mt, trials) if rank == 0 else []
    dist.barrier()  # the other ranks waited: then the same GEMMs on all ranks at once
    concurrent = bench_matmul(args.batch, shapes, dtype, device, mt, trials)
    elem = bench_elementwise(args.batch, sorted({args.width // p, args.width}),
                             args.activation, dtype, device, mt, trials)
    m = args.width // p
    gen = torch.Generator().manual_seed(args.seed + 7)
    h_b = torch.randn(args.batch, m, generator=gen).to(device, dtype)
    w_b = torch.randn(m, m, generator=gen).to(device, dtype)

    def burst() -> None:
        for _ in range(IN_STEP_BURST_GEMMS):
            torch.mm(h_b, w_b)

    sizes = in_step_sizes(args.batch, args.width, p, args.ghosts, args.d_out)
    in_step = bench_collectives_in_step(comm, sizes, burst, dtype, device, args.in_step_calls,
                                        trials)
    dist.barrier()  # Adam over each strategy's local parameter shapes (throwaway tensors)
    sets = {s: local_param_shapes(r.model) for s, r in runners.items()}
    synthetic = [[(size,)] * count for count in (2, 16) for size in (1024, 262144)]
    opt = bench_optimizer([*sets.values(), *synthetic], args.lr, device, dtype, mt, trials)
    labels = [*sets, *(f"{len(x)}x{x[0][0]}" for x in synthetic)]
    opt = [{**r, "set": label} for r, label in zip(opt, labels, strict=True)]
    opt = _mean_over_ranks(opt, p)
    concurrent = _mean_over_ranks(concurrent, p)
    return {"matmul": alone, "matmul_concurrent": concurrent,
            "flop_rate_concurrent": rate_through_origin([(r["seconds"], r["flops"])
                                                         for r in concurrent]),
            "elementwise_concurrent": _mean_over_ranks(elem, p),
            "in_step_collectives": in_step, "in_step_burst_gemms": IN_STEP_BURST_GEMMS,
            "optimizer": opt, "adam_step_s": {s: opt[i]["seconds"] for i, s in enumerate(sets)}}


def run(args: argparse.Namespace, comm: Comm, device: torch.device,
        hw: hardware.Profile) -> dict[str, Any] | None:
    """Run the whole benchmark on this rank; returns the result dict on rank 0, else ``None``."""
    rank, p = comm.rank, comm.world_size
    dtype = DTYPES[args.dtype]
    loadavg_before = os.getloadavg()
    started = time.time()
    cfg = FFNConfig(args.d_in, args.width, args.layers, args.d_out, args.activation)
    runners = {s: StrategyRunner(s, cfg, comm, ghosts=args.ghosts, batch=args.batch,
                                 seed=args.seed, lr=args.lr, device=device, dtype=dtype)
               for s in BENCH_STRATEGIES}
    micro = microbenchmarks(args, comm, device, runners)
    run_interleaved(runners, args.steps, args.warmup, args.rounds)
    profiles: dict[str, str | None] = {}
    if args.profile_steps:
        profiles = {s: profile_steps(runners[s], args.profile_steps, rank) for s in ("pp", "tp")}
    loadavg_after = os.getloadavg()
    per_rank = _gather({s: r.samples.__dict__ for s, r in runners.items()}, p)
    hosts = _gather(socket.gethostname(), p)
    if rank != 0:
        return None
    elem = torch.tensor([], dtype=dtype).element_size()
    shape = FFNShape(args.d_in, args.width, args.layers, args.d_out, args.batch, p, args.ghosts,
                     elem)
    mode = "sync" if device.type == "cpu" else "eager"
    result = analyse(shape, args.activation, hw, mode, micro, per_rank,
                     {s: r.last_loss for s, r in runners.items()})
    return {
        "config": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "world_size": p, "m": args.width // p},
        "env": {
            "phantom_parallel": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "host": hosts[0], "hosts": sorted(set(hosts)),
            "backend": dist.get_backend(), "device": str(device),
            "threads_per_rank": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "loadavg_before": list(loadavg_before), "loadavg_after": list(loadavg_after),
            "started_at": started, "wall_time_s": time.time() - started,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        },
        **result,
        "profiles": profiles,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-bench`` entry point (run under torchrun on every rank)."""
    args = parse_args(argv)
    env = read_launch_env()
    hw = _validate(args, env.world_size)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // env.world_size))
    comm = init_distributed(env, args.backend, args.device, args.timeout_s)
    assert comm is not None
    device = torch.device(args.device if args.device != "cuda"
                          else f"cuda:{torch.cuda.current_device()}")
    rc = 0
    try:
        res = run(args, comm, device, hw)
        if res is not None:
            sys.stdout.write(format_report(res))
            sys.stdout.flush()
            if args.json and (err := cli.write_output(
                    "--json", args.json,
                    json.dumps(jsonable(res), indent=1, allow_nan=False) + "\n", mkdir=True)):
                print(f"phantom-bench: error: {err}", file=sys.stderr)
                rc = 1
        dist.barrier()  # every rank ends here, also when rank 0 could not write --json
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return rc


if __name__ == "__main__":
    sys.exit(main())
