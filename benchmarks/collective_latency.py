"""Collective latency through :class:`Comm`: back-to-back vs after a compute gap.

The cost model's ``alpha`` is calibrated from back-to-back collectives. In a training step every
collective follows a stretch of compute, and a rank that arrives first waits for its peer
(skew) and must then be woken up. This probe times, per op and size, the median and mean
seconds per call (ledger time, mean over ranks) with 0, 1 and 10 per-rank GEMMs
(B x m @ m x m) before each call.

    torchrun --standalone --nproc-per-node 2 benchmarks/collective_latency.py \\
        [--batch 64 --width 512 --ghosts 16 --calls 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import torch
import torch.distributed as dist

from phantom_parallel.comm import Comm


def probe(comm: Comm, name: str, fn: Callable[[], object], gemm: Callable[[], object],
          gap: int, calls: int) -> tuple[float, float]:
    """Median and mean seconds per call of ``fn`` with ``gap`` GEMMs before each call."""
    dist.barrier()
    times = []
    for _ in range(calls):
        for _ in range(gap):
            gemm()
        before = comm.ledger.seconds
        fn()
        times.append(comm.ledger.seconds - before)
    t = torch.tensor([statistics.median(times), statistics.fmean(times)], dtype=torch.float64)
    dist.all_reduce(t)
    t /= comm.world_size
    return float(t[0]), float(t[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--ghosts", type=int, default=16)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    dist.init_process_group("gloo")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.get_world_size()))
    comm = Comm()
    p, b, k = comm.world_size, args.batch, args.ghosts
    m = args.width // p
    h, w = torch.randn(b, m), torch.randn(m, m)
    ops: dict[str, Callable[[], object]] = {
        f"all_gather B*k={b * k}": lambda: comm.all_gather(torch.zeros(b, k)),
        f"reduce_scatter p*B*k={p * b * k}": lambda: comm.reduce_scatter(torch.zeros(p, b, k)),
        f"all_reduce B*k={b * k}": lambda: comm.all_reduce(torch.zeros(b, k)),
        f"all_reduce B*n={b * args.width}": lambda: comm.all_reduce(torch.zeros(b, args.width)),
    }
    if comm.rank == 0:
        print(f"p={p} gloo, threads/rank {torch.get_num_threads()}, loadavg {os.getloadavg()}")
        print(f"{'op':32} {'gap GEMMs':>9} {'median us':>10} {'mean us':>10}")
    for gap in (0, 1, 10):
        for name, fn in ops.items():
            med, mean = probe(comm, name, fn, lambda: torch.mm(h, w), gap, args.calls)
            if comm.rank == 0:
                print(f"{name:32} {gap:>9} {med * 1e6:>10.1f} {mean * 1e6:>10.1f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
