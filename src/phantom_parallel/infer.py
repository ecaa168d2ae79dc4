"""``phantom-infer``: forward-only latency, throughput and energy of a built model, any strategy.

Launched like ``phantom-train`` (``torchrun --standalone --nproc-per-node P -m
phantom_parallel.infer ...`` or ``srun``): builds the model of ``--strategy`` at world size p
(the trainer's initialisation, no training), runs ``--warmup`` then ``--steps`` forwards of a
fixed batch of ``--batch-size`` rows under ``torch.inference_mode`` and reports (rank 0, one JSON
object on stdout, also written to ``--json``)::

    strategy, p, n, k, batch, latency_s, throughput_samples_per_s, energy_j_per_sample,
    energy_method (+ layers, d_in, d_out, dtype, device, steps, warmup, pp_init, window_s, energy_j)

``latency_s``: median over the measured steps of the slowest rank's forward time (s per batch,
device synchronised); ``throughput_samples_per_s``: batch x steps / the wall time of the
measured window (s, back to back, between two barriers). Every rank sees the whole batch except
under fsdp (data parallel), where each rank runs batch/p of its rows. Energy: the project's
sampler (one per node, on local rank 0) integrated over the window for the devices the node's
ranks use (a CPU node: every zone the log reports), summed over nodes, divided by batch x steps
(J per sample); null with the reason when there is no sensor or the window is too short for
it (< 95 % covered: raise ``--steps``). Never modelled.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from phantom_parallel import cli
from phantom_parallel.data import load_manifest
from phantom_parallel.distributed import init_distributed, read_launch_env
from phantom_parallel.emulate_energy import MIN_COVERAGE, EnergyMeter
from phantom_parallel.energy.sources import POWER_SOURCES, source_error
from phantom_parallel.models import (
    ACTIVATIONS,
    STRATEGIES,
    FFNConfig,
    build_model,
    validate_layout,
)
from phantom_parallel.param_init import PP_INITS
from phantom_parallel.train import DTYPES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("phantom-infer", __doc__)
    p.add_argument("--strategy", choices=STRATEGIES, required=True)
    p.add_argument("--width", type=int, required=True, help="hidden width n (divisible by ranks p)")
    p.add_argument("--layers", type=int, default=2, help="number L of hidden n x n layers")
    p.add_argument("--ghosts", type=int, default=None,
                   help="ghost neurons k per rank (pp; other strategies ignore it, but it must be >= 1)")
    p.add_argument("--pp-init", choices=PP_INITS, default=PP_INITS[0])
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="gelu")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset folder: d_in and d_out from its manifest (else --d-in/--d-out)")
    p.add_argument("--d-in", type=int, default=None,
                   help="input features (default: 64, or the --data's; given with --data: must match it)")
    p.add_argument("--d-out", type=int, default=None,
                   help="output features (default: 8, or the --data's; given with --data: must match it)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per forward (all ranks)")
    p.add_argument("--steps", type=int, default=50, help="measured forwards")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured forwards first")
    p.add_argument("--seed", type=int, default=0, help="init and input batch (>= 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--backend", default="auto", help="auto, gloo or nccl")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads per rank")
    p.add_argument("--power-source", choices=POWER_SOURCES, default="auto")
    p.add_argument("--power-interval-ms", type=float, default=100.0, help="sampler poll interval (ms)")
    p.add_argument("--timeout-s", type=float, default=300.0, help="collective timeout")
    p.add_argument("--json", type=Path, default=None,
                   help="also write the result here (missing folders are created; an existing "
                        "file is replaced, atomically)")
    return p.parse_args(argv)


def validate(args: argparse.Namespace, world_size: int) -> None:
    """Reject bad input before any work starts: one line naming the flag and value (on every
    rank alike, said once per node: :func:`phantom_parallel.cli.refuse`). Sets ``args.d_in``
    and ``args.d_out`` (from ``--data``'s manifest, else the defaults) when not given."""
    msg = (cli.minimum_error({"--width": args.width, "--d-in": args.d_in, "--d-out": args.d_out,
                              "--batch-size": args.batch_size, "--steps": args.steps,
                              "--threads": args.threads, "--ghosts": args.ghosts}, 1)
           or cli.minimum_error({"--layers": args.layers, "--warmup": args.warmup,
                                 "--seed": args.seed}, 0)
           or cli.minimum_error({"--power-interval-ms": args.power_interval_ms,
                                 "--timeout-s": args.timeout_s}, 0, strict=True)
           or cli.ghosts_error(args.strategy, args.ghosts))
    if msg is None:
        try:
            validate_layout(args.strategy, args.width, world_size, args.ghosts)
        except ValueError as err:
            msg = cli.layout_error(err)
    if msg is None and args.strategy == "fsdp" and args.batch_size % world_size:
        msg = (f"--batch-size={args.batch_size} is not divisible by the number of ranks "
               f"p={world_size} (fsdp splits each batch over the ranks)")
    msg = (msg or _data_shapes(args) or cli.device_error(args.device, args.backend)
           or cli.output_error("--json", args.json, mkdir=True)
           or source_error(args.power_source))
    if msg is not None:
        cli.refuse("phantom-infer", msg)


def _data_shapes(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--data`` (its manifest, read as ``phantom-train`` reads it) or with a
    given ``--d-in``/``--d-out`` that differs from its shapes (None: nothing; then both are set:
    the data's, or the defaults)."""
    if args.data is not None:
        if not (args.data / "manifest.json").exists():
            return f"--data={args.data}: no manifest.json there (generate it with phantom-data generate)"
        try:
            manifest = load_manifest(args.data)
        except (OSError, ValueError) as err:
            return f"--data={args.data}: {err}"
        for key in ("d_in", "d_out"):
            given, theirs = getattr(args, key), int(manifest[key])
            if given is not None and given != theirs:
                flag = f"--{key.replace('_', '-')}"
                return (f"{flag}={given} differs from the {key}={theirs} of --data={args.data} "
                        f"(leave {flag} out to use the data's)")
            setattr(args, key, theirs)
    args.d_in = 64 if args.d_in is None else args.d_in
    args.d_out = 8 if args.d_out is None else args.d_out
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _node_energy(meter: EnergyMeter, t0: int, t1: int, devices: list[str] | None) -> tuple[float | None, str]:
    """Energy (J) of this node's ``devices`` (None: every device in the log) over [t0, t1] ns."""
    if meter.handle is None:
        return None, "none (no power sensor)"
    meter.handle.stop()
    from phantom_parallel.energy.formats import parse
    from phantom_parallel.energy.integrate import device_energy

    samples = parse(meter.handle.log_path).samples
    wanted = devices or sorted({s.device for s in samples})
    parts = [device_energy(d, samples, t0, t1) for d in wanted]
    bad = [p for p in parts if p.method == "none" or p.coverage < MIN_COVERAGE]
    if not parts or bad:
        why = "; ".join(w for p in bad for w in p.warnings) or "no device readings"
        return None, f"none ({why})"
    methods = "+".join(sorted({p.method for p in parts}))
    return sum(p.energy_j for p in parts), f"measured {meter.handle.source} {methods}"


def measure(args: argparse.Namespace, model: torch.nn.Module, device: torch.device, rank: int,
            world: int) -> tuple[list[float], int, int]:
    """Warm-up, then ``steps`` timed forwards; returns the per-step times of the slowest rank
    (s) and the window's wall-clock ends (ns)."""
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, args.d_in, generator=gen).to(device, DTYPES[args.dtype])
    if args.strategy == "fsdp":
        rows = args.batch_size // world
        x = x[rank * rows:(rank + 1) * rows].contiguous()
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x)
        _sync(device)
        if world > 1:
            dist.barrier()
        times = []
        t0 = time.time_ns()
        for _ in range(args.steps):
            s0 = time.perf_counter()
            model(x)
            _sync(device)
            times.append(time.perf_counter() - s0)
        if world > 1:
            dist.barrier()
        t1 = time.time_ns()
    if world > 1:
        t = torch.tensor(times, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        times = t.cpu().tolist()
    return times, t0, t1


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = read_launch_env()
    validate(args, env.world_size)
    if args.threads:
        torch.set_num_threads(args.threads)
    comm = init_distributed(env, args.backend, args.device, args.timeout_s)
    rank, world = env.rank, env.world_size
    device = torch.device(args.device if args.device != "cuda" else f"cuda:{torch.cuda.current_device()}")
    cfg = FFNConfig(args.d_in, args.width, args.layers, args.d_out, args.activation)
    model = build_model(args.strategy, cfg, comm, ghosts=args.ghosts, seed=args.seed,
                        device=device, dtype=DTYPES[args.dtype], pp_init=args.pp_init)
    model.eval()
    me = (socket.gethostname(), str(device.index) if device.type == "cuda" else None)
    ranks: list[Any] = [me]
    if world > 1:
        ranks = [None] * world
        dist.all_gather_object(ranks, me)
    source = args.power_source if env.local_rank == 0 else "none"
    with tempfile.TemporaryDirectory(prefix="phantom-infer-") as tmp, \
            EnergyMeter(source, Path(tmp), window_s=0.0,
                        interval_s=args.power_interval_ms / 1e3) as meter:
        times, t0, t1 = measure(args, model, device, rank, world)
        node_devices = sorted({d for h, d in ranks if h == me[0] and d is not None}) or None
        node = _node_energy(meter, t0, t1, node_devices) if env.local_rank == 0 else None
    nodes: list[Any] = [node]
    if world > 1:
        nodes = [None] * world
        dist.all_gather_object(nodes, node)
    nodes = [n for n in nodes if n is not None]  # one per node (local rank 0)
    samples = args.batch_size * args.steps
    energy = None if any(e is None for e, _ in nodes) else sum(e for e, _ in nodes)
    methods = sorted({m for _, m in nodes})
    window_s = (t1 - t0) / 1e9
    return {
        "strategy": args.strategy, "p": world, "n": args.width,
        "k": args.ghosts if args.strategy == "pp" else None, "batch": args.batch_size,
        "latency_s": statistics.median(times), "throughput_samples_per_s": samples / window_s,
        "energy_j_per_sample": None if energy is None else energy / samples,
        "energy_method": "; ".join(methods),
        "layers": args.layers, "d_in": args.d_in, "d_out": args.d_out, "dtype": args.dtype,
        "device": device.type, "steps": args.steps, "warmup": args.warmup,
        "pp_init": args.pp_init if args.strategy == "pp" else None, "window_s": window_s,
        "energy_j": energy,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rc = 0
    try:
        result = run(args)
        if read_launch_env().rank == 0:
            text = json.dumps(result, indent=2)
            print(text, flush=True)
            if args.json is not None and (
                    err := cli.write_output("--json", args.json, text + "\n", mkdir=True)):
                print(f"phantom-infer: error: {err}", file=sys.stderr)
                rc = 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return rc


if __name__ == "__main__":
    sys.exit(main())
