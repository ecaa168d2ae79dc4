"""Operators one hidden layer dispatches per training step (forward + backward), by layer kind.

Counts the aten operators of one forward and backward of a single layer of rank ``--rank`` of
p (collectives replaced by ``phantom-emulate``'s local stand-ins) with
:class:`phantom_parallel.emulate_comm.CountOps`, split into views (``t``, ``view``, ``slice``,
``detach`` ...: dispatched by the host, no kernel) and the rest (GEMMs, elementwise kernels,
allocations, collective stand-ins), each listed by name. At the per-rank sizes of p = 64-256
the eager GPU step is bound by the host's per-operator cost, so these counts are what a PP step
pays against a TP step there (TP's hidden layers alternate row- and column-parallel).

    python benchmarks/layer_ops.py --width 2048 --ghosts 4 --ranks 256 [--rank R]
"""

from __future__ import annotations

import argparse

import torch

from phantom_parallel.emulate_comm import CountOps, StandInComm
from phantom_parallel.layers import ColumnParallelLinear, PhantomLinear, RowParallelLinear


def count(layer: torch.nn.Module, x: torch.Tensor) -> CountOps:
    """Operators of one forward and backward of ``layer`` on ``x`` (after one warm-up), the
    gradients unset first as a training step's ``zero_grad(set_to_none=True)`` leaves them."""
    for param in layer.parameters():
        torch.nn.init.normal_(param)
    y = layer(x)
    grad = torch.ones_like(y)
    y.backward(grad)
    layer.zero_grad(set_to_none=True)
    x.grad = None
    with CountOps() as ops:
        layer(x).backward(grad)
    return ops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=2048, help="hidden width n")
    ap.add_argument("--ghosts", type=int, default=4, help="ghosts k per rank")
    ap.add_argument("--ranks", type=int, default=256, help="p")
    ap.add_argument("--rank", type=int, default=0,
                    help="the rank whose layer is counted (every rank's is the same)")
    ap.add_argument("--batch", type=int, default=8, help="batch size B")
    args = ap.parse_args(argv)
    n, p, b = args.width, args.ranks, args.batch
    rank = args.rank
    if not 0 <= rank < p:
        ap.error(f"--rank {rank} is not a rank of p = {p} (--ranks)")
    comm = StandInComm(p, rank)
    try:
        layers = {
            "pp phantom": (PhantomLinear(n, args.ghosts, comm), torch.randn(b, n // p, requires_grad=True)),
            "tp column": (ColumnParallelLinear(n, n, comm), torch.randn(b, n, requires_grad=True)),
            "tp row": (RowParallelLinear(n, n, comm), torch.randn(b, n // p, requires_grad=True)),
        }
    except ValueError as err:  # a layout the layers refuse (p not dividing n, k > m)
        ap.error(f"--width {n} --ranks {p} --ghosts {args.ghosts}: {err}")
    print(f"one hidden layer, forward + backward, rank {rank} of p = {p}, n = {n}, "
          f"k = {args.ghosts}, B = {b}")
    for name, (layer, x) in layers.items():
        ops = count(layer, x)
        print(f"{name:11} {ops.count - ops.views:3} operators that are not views "
              f"{dict(sorted(ops.other_names.items()))}")
        print(f"{'':11} {ops.views:3} views {dict(sorted(ops.view_names.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
