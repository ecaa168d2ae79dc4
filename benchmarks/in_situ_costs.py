"""In-situ cost of a training step that kernel microbenchmarks miss: page faults per step.

Runs rank 0's share of a ``pp`` and a ``tp`` training step (forward + MSE + backward + Adam) in
ONE process, with the collectives replaced by local stand-ins of the same output shapes
(``phantom_parallel.emulate.StandInComm``: all-gather writes the local chunk p times,
reduce-scatter sums the p chunks, all-reduce reads and writes its tensor once), so that what is measured is the step's computation and memory traffic alone, with no
peer to wait for. Prints per strategy: minor page faults per step (``getrusage``), the aten
operators dispatched per step (forward + backward, and Adam; counted once with a
``TorchDispatchMode``; the stand-ins' local copies are counted too)
and the median forward / backward / optimizer / step time in ms.

Usage (compare the allocator's effect by running it twice)::

    OMP_NUM_THREADS=1 python benchmarks/in_situ_costs.py --width 2048 --ghosts 64 --batch 256
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647 \\
        OMP_NUM_THREADS=1 python benchmarks/in_situ_costs.py --width 2048 --ghosts 64 --batch 256

The numbers are not the distributed step's (no communication, no peer): they show how much a
step's own allocation pattern costs compared with kernels timed on warm buffers.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from phantom_parallel.emulate import CountOps, StandInComm
from phantom_parallel.models import FFNConfig, build_model


def measure(strategy: str, args: argparse.Namespace) -> dict[str, float]:
    """Median phase times (s) and minor page faults per step of one strategy."""
    cfg = FFNConfig(args.d_in, args.width, args.layers, args.d_out, "gelu")
    model = build_model(strategy, cfg, StandInComm(args.p),  # type: ignore[arg-type]
                        ghosts=args.ghosts if strategy == "pp" else None, seed=0,
                        device=torch.device("cpu"), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.d_in, generator=gen)
    y = torch.randn(args.batch, args.d_out, generator=gen)
    times: dict[str, list[float]] = {"fwd": [], "bwd": [], "opt": [], "step": []}
    faults = 0
    for i in range(args.warmup + args.steps):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        loss = F.mse_loss(model(x), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= args.warmup:
            faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
            for key, v in (("fwd", t1 - t0), ("bwd", t2 - t1), ("opt", t3 - t2),
                           ("step", t3 - t0)):
                times[key].append(v)
    with CountOps() as fwd_bwd:
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
    with CountOps() as adam:
        opt.step()
    return {"faults_per_step": faults / args.steps, "ops_fwd_bwd": fwd_bwd.count,
            "ops_optimizer": adam.count,
            **{k: statistics.median(v) for k, v in times.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--ghosts", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--p", type=int, default=2, help="virtual ranks (rank 0's share is run)")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--d-out", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"n={args.width} k={args.ghosts} B={args.batch} L={args.layers} p={args.p} "
          f"(rank 0's share, one process, collectives replaced by local stand-ins)")
    for strategy in ("pp", "tp"):
        r = measure(strategy, args)
        print(f"  {strategy}: {r['faults_per_step']:.0f} minor page faults per step; step "
              f"{r['step'] * 1e3:.2f} ms (fwd {r['fwd'] * 1e3:.2f}, bwd {r['bwd'] * 1e3:.2f}, "
              f"opt {r['opt'] * 1e3:.2f}); aten ops per step: {r['ops_fwd_bwd']} forward + backward, "
              f"{r['ops_optimizer']} Adam")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
