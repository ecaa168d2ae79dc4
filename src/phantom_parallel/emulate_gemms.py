"""``phantom-emulate --gemm-table PATH``: time every GEMM shape of the emulated steps on the
device, as the ``gemm_table`` of a hardware profile (:mod:`phantom_parallel.hardware`).

The shapes are the time model's own (:func:`phantom_parallel.timing.step_gemms` of the cost
model's layers: forward, weight and input gradients) for each strategy and p of the run, so a
profile that carries the table predicts those GEMMs from their measured times. Each shape is
one ``torch.mm`` of a contiguous ``M x K`` and ``K x N`` matrix, timed by the microbenchmark
clock of ``phantom-bench`` (:func:`phantom_parallel.bench_micro.time_call`: device synchronised
around back-to-back calls, median over trials); the layers' transposed operands are not
reproduced.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import torch
import yaml

from phantom_parallel.bench_micro import time_call
from phantom_parallel.constants import DTYPE_BYTES
from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.timing import step_gemms
from phantom_parallel.train_args import DTYPES
from phantom_parallel.train_record import cpu_model

Shape = tuple[int, int, int]


def shapes(strategies: list[str], ranks: list[int], args: argparse.Namespace) -> list[Shape]:
    """Sorted distinct ``(M, K, N)`` of every GEMM of one step of each strategy at each p
    (serial at p = 1), at ``args``' width, layers, ghosts, batch and dtype."""
    out: set[Shape] = set()
    for strategy in strategies:
        for p in [1] if strategy == "serial" else ranks:
            shape = FFNShape(args.d_in, args.width, args.layers, args.d_out, args.batch, p,
                             args.ghosts if strategy == "pp" else 0, DTYPE_BYTES[args.dtype])
            out.update(step_gemms(predict(strategy, shape)))
    return sorted(out)


def measure(gemms: list[Shape], dtype: str, device: torch.device, *, min_time_s: float = 0.05,
            trials: int = 5) -> list[list]:
    """``[M, K, N, dtype, seconds]`` per shape: median seconds of one ``(M x K) @ (K x N)``."""
    gen = torch.Generator().manual_seed(0)
    rows = []
    for m, k, n in gemms:
        a = torch.randn(m, k, generator=gen).to(device, DTYPES[dtype])
        b = torch.randn(k, n, generator=gen).to(device, DTYPES[dtype])
        seconds = time_call(lambda a=a, b=b: torch.mm(a, b), device, min_time_s, trials)
        rows.append([m, k, n, dtype, float(f"{seconds:.4g}")])
    return rows


def source(device: torch.device, command: list[str]) -> str:
    """What measured the table: the command, the device, torch and the date (UTC)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        (cpu_model() or platform.machine())
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    return (f"measured by `{' '.join(command)}` on {device.type} {name}{threads}, torch "
            f"{torch.__version__}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d}")


def table(rows: list[list], what: str) -> str:
    """``{gemm_table: {source, rows}}`` as YAML, ready to paste into a profile (``phantom-emulate``
    writes it to ``--gemm-table``)."""
    text = yaml.safe_dump({"gemm_table": {"source": what, "rows": rows}},
                          default_flow_style=None, sort_keys=False, width=120)
    return "# GEMMs timed on one device; paste into config/hardware/<profile>.yaml\n" + text
