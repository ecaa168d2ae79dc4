"""``phantom-bench``: step time of ``pp``, ``tp`` and ``dtensor`` side by side in one run.

Launch on ``p >= 2`` ranks, e.g.::

    torchrun --standalone --nproc-per-node 2 -m phantom_parallel.bench \\
        --width 1024 --layers 4 --ghosts 16 --batch 64 --steps 30 --warmup 5 --json out.json

What one run does (every rank, same shapes, same ``p``):

1. **Calibration microbenchmarks** (never the step times): single-process GEMMs of the per-rank
   layer shapes on rank 0 (same thread count as a rank) -> matmul FLOP/s; elementwise kernels
   (bias add, activation forward/backward, bias-grad sum) on rank 0 -> nominal elementwise
   FLOP/s; all-reduce / all-gather / reduce-scatter of a few sizes through :class:`Comm` on all
   ranks -> latency ``alpha`` (s) and bandwidth ``beta`` (bytes/s) by non-negative least squares
   of time vs ring wire bytes (:func:`phantom_parallel.alphabeta.calibrate`, rows weighted by
   1/time so small and large messages count alike).
2. **Interleaved training steps**: forward + MSE loss + backward + Adam step on a fixed
   synthetic batch, round-robin over ``pp -> tp -> dtensor`` for several rounds so that machine
   noise hits all strategies alike. Per step: wall time (max over ranks), communication time
   from the ledger (pp/tp; mean over ranks), compute = step - comm, and forward / backward /
   optimizer phases.
3. **Report** (rank 0): median and IQR per strategy, achieved matmul FLOP/s against the
   microbenchmark rate, the cost model's predicted step time
   (:func:`phantom_parallel.alphabeta.predict_time`) next to the measured one, ratios PP/TP and
   TP/DTensor with an IQR-based uncertainty, and PASS/MISS for the two targets:
   PP step time within 15 % of the prediction, our TP no slower than DTensor TP.
   The PP target's prediction uses the microbenchmark constants **re-calibrated on this run's
   measured TP steps** (:func:`phantom_parallel.alphabeta.recalibrate`: one factor per phase,
   communication, compute and optimizer, so that the constants reproduce TP's measured
   phases); PP's own steps are never used, so PP is predicted out of sample by the model's
   structure (FLOPs, bytes, calls, GEMMs, parameter tensors). The microbenchmark-only
   prediction is printed as a diagnostic: the gap is the in-situ cost (allocator page faults,
   cold caches, framework ops) that kernels timed in isolation do not see.

Uncertainty of a median: ``se = 0.93 * IQR / sqrt(N)`` (normal approximation,
``1.2533 sigma / sqrt(N)`` with ``sigma = IQR / 1.349``); a ratio's uncertainty combines the two
relative ones in quadrature. Times are seconds, rates FLOP/s or bytes/s, sizes bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from phantom_parallel import __version__, alphabeta, costs
from phantom_parallel.comm import Comm
from phantom_parallel.distributed import init_distributed, read_launch_env, resolve_backend
from phantom_parallel.models import ACTIVATIONS, FFNConfig, build_model

BENCH_STRATEGIES: tuple[str, ...] = ("pp", "tp", "dtensor")
"""Strategies timed side by side, in round-robin order."""

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
}
PP_TARGET = 0.15
"""PP target: ``|measured / predicted - 1| <= PP_TARGET``."""
SE_MEDIAN = 1.2533 / 1.349
"""``se(median) = SE_MEDIAN * IQR / sqrt(N)`` for normally distributed samples."""


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """``(median, q1, q3)`` of ``values`` (inclusive quartiles; one value gives q1 = q3)."""
    if not values:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        v = float(values[0])
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return float(q2), float(q1), float(q3)


def median_se(values: Sequence[float]) -> float:
    """Standard error of the median from the IQR (same unit as ``values``)."""
    if len(values) < 2:
        return math.nan
    _, q1, q3 = median_iqr(values)
    return SE_MEDIAN * (q3 - q1) / math.sqrt(len(values))


def ratio(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``median(a) / median(b)`` and its uncertainty (relative errors in quadrature)."""
    ma, mb = median_iqr(a)[0], median_iqr(b)[0]
    r = ma / mb
    return r, r * math.hypot(median_se(a) / ma, median_se(b) / mb)


def rate_through_origin(rows: Sequence[tuple[float, float]]) -> float:
    """Least-squares rate ``r`` of ``seconds = work / r`` over ``(seconds, work)`` rows."""
    num = sum(t * w for t, w in rows)
    den = sum(w * w for _, w in rows)
    return den / num


# --------------------------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reps_for(fn: Callable[[], object], device: torch.device, min_time_s: float) -> int:
    """Calls of ``fn`` that take about ``min_time_s`` seconds (at least 1)."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    dt = time.perf_counter() - t0
    return max(1, min(100_000, int(min_time_s / max(dt, 1e-7))))


def time_call(fn: Callable[[], object], device: torch.device, min_time_s: float,
              trials: int, reps: int | None = None) -> float:
    """Median over ``trials`` of the mean seconds per call of ``fn`` (each trial ~min_time_s)."""
    reps = reps or _reps_for(fn, device, min_time_s)
    samples = []
    for _ in range(trials):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync(device)
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)


# --------------------------------------------------------------------------------------------
# microbenchmarks
# --------------------------------------------------------------------------------------------


def gemm_shapes(batch: int, width: int, p: int, ghosts: int) -> list[tuple[str, int, int]]:
    """``(label, in, out)`` of the per-rank linears of TP and PP hidden layers (m = n/p)."""
    m = width // p
    shapes = [("tp-row", m, width), ("tp-col", width, m), ("pp-local", m, m)]
    if p > 1 and ghosts > 0:
        shapes += [("pp-compress", m, ghosts), ("pp-decompress", (p - 1) * ghosts, m)]
    return shapes


def bench_matmul(batch: int, shapes: Sequence[tuple[str, int, int]], dtype: torch.dtype,
                 device: torch.device, min_time_s: float, trials: int) -> list[dict[str, Any]]:
    """Time the three GEMMs of a linear ``(B x in) -> (B x out)`` as autograd runs them.

    ``fwd``: ``X W^T`` (B x in @ in x out); ``dgrad``: ``G W`` (B x out @ out x in);
    ``wgrad``: ``G^T X`` (out x B @ B x in). Each has ``2 B in out`` FLOPs.

    Returns:
        One row per (shape, GEMM): label, gemm, m/k/n of the product, flops, seconds, flop_rate.
    """
    gen = torch.Generator().manual_seed(0)
    rows = []
    for label, fan_in, fan_out in shapes:
        x = torch.randn(batch, fan_in, generator=gen).to(device, dtype)
        w = torch.randn(fan_out, fan_in, generator=gen).to(device, dtype)
        g = torch.randn(batch, fan_out, generator=gen).to(device, dtype)
        gemms: dict[str, tuple[Callable[[], object], tuple[int, int, int]]] = {
            "fwd": (lambda x=x, w=w: torch.mm(x, w.t()), (batch, fan_in, fan_out)),
            "dgrad": (lambda g=g, w=w: torch.mm(g, w), (batch, fan_out, fan_in)),
            "wgrad": (lambda g=g, x=x: torch.mm(g.t(), x), (fan_out, batch, fan_in)),
        }
        for name, (fn, (a, b, c)) in gemms.items():
            seconds = time_call(fn, device, min_time_s, trials)
            flops = 2 * a * b * c
            rows.append({"label": label, "gemm": name, "m": a, "k": b, "n": c, "flops": flops,
                         "seconds": seconds, "flop_rate": flops / seconds})
    return rows


_ACT_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gelu": lambda grad, z, a: torch.ops.aten.gelu_backward(grad, z),
    "relu": lambda grad, z, a: torch.ops.aten.threshold_backward(grad, a, 0),
    "tanh": lambda grad, z, a: torch.ops.aten.tanh_backward(grad, a),
}
ELEMENTWISE_PER_ELEMENT = 5
"""Nominal FLOPs per element of :func:`bench_elementwise`, as :func:`costs.predict` counts them:
bias add 1 + bias-grad 1 + activation 3 (forward 1, backward 2)."""


def bench_elementwise(batch: int, widths: Sequence[int], activation: str, dtype: torch.dtype,
                      device: torch.device, min_time_s: float, trials: int) -> list[dict[str, Any]]:
    """Time bias add, activation forward and backward and the bias-gradient sum on B x w.

    Returns:
        One row per width: width, nominal elementwise flops (5 per element), seconds, rate.
    """
    act = ACTIVATIONS[activation]()
    backward = _ACT_BACKWARD[activation]
    rows = []
    for w in widths:
        x = torch.randn(batch, w, device=device, dtype=dtype)
        b = torch.randn(w, device=device, dtype=dtype)
        g = torch.randn(batch, w, device=device, dtype=dtype)

        def kernels(x: torch.Tensor = x, b: torch.Tensor = b, g: torch.Tensor = g) -> torch.Tensor:
            z = x + b
            a = act(z)
            return backward(g, z, a).sum(0)

        seconds = time_call(kernels, device, min_time_s, trials)
        flops = ELEMENTWISE_PER_ELEMENT * batch * w
        rows.append({"width": w, "flops": flops, "seconds": seconds, "rate": flops / seconds})
    return rows


def bench_adam(model: torch.nn.Module, lr: float, device: torch.device, min_time_s: float,
               trials: int) -> float:
    """Seconds of one ``torch.optim.Adam`` step over fresh tensors shaped like ``model``'s
    local parameters (DTensor parameters: their local shards), with random gradients."""
    params = []
    for prm in model.parameters():
        local = prm.to_local() if hasattr(prm, "to_local") else prm
        t = torch.zeros_like(local.detach(), device=device).requires_grad_()
        t.grad = torch.randn_like(t)
        params.append(t)
    opt = torch.optim.Adam(params, lr=lr)
    return time_call(opt.step, device, min_time_s, trials)


def bench_optimizer(shape_sets: Sequence[Sequence[tuple[int, ...]]], lr: float,
                    device: torch.device, dtype: torch.dtype, min_time_s: float,
                    trials: int) -> list[dict[str, Any]]:
    """Seconds of one ``torch.optim.Adam`` step per set of parameter shapes, each over fresh,
    throwaway tensors with random gradients (never the timed models or optimizers).

    Returns:
        One row per set: tensors, elements, seconds.
    """
    rows = []
    for shapes in shape_sets:
        params = []
        for shp in shapes:
            t = torch.zeros(shp, device=device, dtype=dtype).requires_grad_()
            t.grad = torch.randn_like(t)
            params.append(t)
        opt = torch.optim.Adam(params, lr=lr)
        seconds = time_call(opt.step, device, min_time_s, trials)
        rows.append({"tensors": len(params), "elements": sum(t.numel() for t in params),
                     "seconds": seconds})
    return rows


def local_param_shapes(model: torch.nn.Module) -> list[tuple[int, ...]]:
    """Shapes of ``model``'s parameters on this rank (DTensor parameters: their local shards)."""
    out = []
    for prm in model.parameters():
        local = prm.to_local() if hasattr(prm, "to_local") else prm
        out.append(tuple(local.shape))
    return out


def bench_collectives_in_step(comm: Comm, sizes: dict[str, list[int]],
                              burst: Callable[[], object], dtype: torch.dtype,
                              device: torch.device, calls: int,
                              trials: int) -> list[dict[str, Any]]:
    """Seconds per call of each collective as a training step calls it: right after a short
    compute burst on every rank (``burst``), so the time includes waiting for the slower peer
    and being woken up, not just the back-to-back latency.

    All ranks call this together; (op, size) points round-robin, ``trials`` blocks of ``calls``
    calls each (barrier before a block). Per point: the mean over all calls (the expected value,
    so that a step's sum of calls is predicted by the sum of means) of the ledger time, averaged
    over ranks.

    Returns:
        One row per (op, size): op, numel, payload_bytes, wire_bytes (ring), seconds,
        seconds_median.
    """
    p = comm.world_size
    elem = torch.tensor([], dtype=dtype).element_size()
    points = []
    for op, numels in sizes.items():
        for numel in numels:
            shape = (p, numel // p) if op == "reduce_scatter" else (numel,)
            points.append((op, numel, getattr(comm, op),
                           torch.zeros(shape, device=device, dtype=dtype)))
    samples: list[list[float]] = [[] for _ in points]
    for _ in range(trials):
        for i, (_, _, fn, buf) in enumerate(points):
            dist.barrier()
            for _ in range(calls):
                burst()
                _sync(device)
                before = comm.ledger.seconds
                fn(buf)
                samples[i].append(comm.ledger.seconds - before)
    comm.ledger.reset()
    stats = torch.tensor([[statistics.fmean(x), statistics.median(x)] for x in samples],
                         dtype=torch.float64)
    dist.all_reduce(stats)  # uncounted: not the benchmark's traffic
    stats /= p
    rows = []
    for (op, numel, _, _), (mean, med) in zip(points, stats.tolist(), strict=True):
        payload = numel * elem
        rows.append({"op": op, "numel": numel, "payload_bytes": payload,
                     "wire_bytes": costs.ring_wire_bytes(op, payload, p),
                     "seconds": mean, "seconds_median": med})
    return rows


IN_STEP_BURST_GEMMS = 3
"""GEMMs ``(B x m) @ (m x m)`` before each in-step collective: about one hidden layer's
forward compute per rank between two collectives."""


def collective_sizes(batch: int, width: int, p: int, ghosts: int, d_out: int) -> dict[str, list[int]]:
    """Payload element counts per collective: the ones of a PP/TP step plus a geometric grid."""
    m = width // p
    grid = [16, 256, 4096, 32768, 262144]
    return {
        "all_reduce": sorted({*grid, batch * width, batch * d_out}),
        "all_gather": sorted({*grid, batch * ghosts, batch * m}),
        "reduce_scatter": sorted({*(g * p for g in grid), batch * p * ghosts}),
    }


def step_collective_sizes(batch: int, width: int, p: int, ghosts: int,
                          d_out: int) -> dict[str, list[int]]:
    """Payload element counts of the collectives a PP or TP step calls."""
    return {
        "all_reduce": sorted({batch * width, batch * d_out}),
        "all_gather": sorted({batch * ghosts, batch * (width // p)}),
        "reduce_scatter": [batch * p * ghosts],
    }


def bench_collectives(comm: Comm, sizes: dict[str, list[int]], dtype: torch.dtype,
                      device: torch.device, min_time_s: float, trials: int) -> list[dict[str, Any]]:
    """Seconds per call of each collective through ``comm`` (timed by its ledger).

    All ranks call this together. The (op, size) points are timed round-robin, ``trials``
    times each, so that a burst of machine noise does not hit one point only. Per point and
    trial: barrier, then ``reps`` back-to-back calls (the same ``reps`` on every rank, chosen
    on rank 0 for about ``min_time_s``); the per-call time is the ledger's seconds / reps,
    averaged over ranks; the row keeps the median over trials.

    Returns:
        One row per (op, size): op, numel, payload_bytes, wire_bytes (ring), seconds.
    """
    p = comm.world_size
    elem = torch.tensor([], dtype=dtype).element_size()
    points: list[tuple[str, int, Callable[[], object], int]] = []
    for op, numels in sizes.items():
        for numel in numels:
            if op == "reduce_scatter":
                buf = torch.zeros(p, numel // p, device=device, dtype=dtype)
            else:
                buf = torch.zeros(numel, device=device, dtype=dtype)  # zeros: sums stay finite

            fn = getattr(comm, op)

            def call(fn: Callable[[torch.Tensor], torch.Tensor] = fn,
                     buf: torch.Tensor = buf) -> None:
                fn(buf)

            reps_t = torch.tensor([_reps_for(call, device, min_time_s)], dtype=torch.float64)
            dist.broadcast(reps_t, 0)  # uncounted: not the benchmark's traffic
            points.append((op, numel, call, int(reps_t.item())))
    samples: list[list[float]] = [[] for _ in points]
    for _ in range(trials):
        for i, (_, _, call, reps) in enumerate(points):
            dist.barrier()
            comm.ledger.reset()
            for _ in range(reps):
                call()
            t = torch.tensor([comm.ledger.seconds / reps], dtype=torch.float64)
            dist.all_reduce(t)
            samples[i].append(t.item() / p)
    comm.ledger.reset()
    rows = []
    for (op, numel, _, _), times in zip(points, samples, strict=True):
        payload = numel * elem
        rows.append({"op": op, "numel": numel, "payload_bytes": payload,
                     "wire_bytes": costs.ring_wire_bytes(op, payload, p),
                     "seconds": statistics.median(times)})
    return rows


# --------------------------------------------------------------------------------------------
# training steps
# --------------------------------------------------------------------------------------------


@dataclass
class StepSamples:
    """Per-step samples on one rank (seconds)."""

    step: list[float] = field(default_factory=list)
    comm: list[float] = field(default_factory=list)
    fwd: list[float] = field(default_factory=list)
    bwd: list[float] = field(default_factory=list)
    opt: list[float] = field(default_factory=list)


class StrategyRunner:
    """One strategy's model, Adam optimizer and fixed synthetic batch on this rank.

    Every rank draws the same ``x`` (B x d_in) and ``y`` (B x d_out) from ``seed`` (TP and
    DTensor need a replicated input).
    """

    def __init__(self, strategy: str, cfg: FFNConfig, comm: Comm, *, ghosts: int, batch: int,
                 seed: int, lr: float, device: torch.device, dtype: torch.dtype) -> None:
        self.strategy, self.comm, self.device = strategy, comm, device
        self.model = build_model(strategy, cfg, comm, ghosts=ghosts if strategy == "pp" else None,
                                 seed=seed, device=device, dtype=dtype)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed + 1)
        self.x = torch.randn(batch, cfg.d_in, generator=gen).to(device, dtype)
        self.y = torch.randn(batch, cfg.d_out, generator=gen).to(device, dtype)
        self.samples = StepSamples()
        self.last_loss = math.nan

    def step(self, record: bool = True) -> None:
        """One optimizer step; appends its times to :attr:`samples` if ``record``."""
        ledger = self.comm.ledger
        ledger.reset()
        _sync(self.device)
        t0 = time.perf_counter()
        loss = F.mse_loss(self.model(self.x).float(), self.y.float())
        _sync(self.device)
        t1 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _sync(self.device)
        t2 = time.perf_counter()
        self.optimizer.step()
        _sync(self.device)
        t3 = time.perf_counter()
        if record:
            s = self.samples
            s.step.append(t3 - t0)
            s.comm.append(ledger.seconds)
            s.fwd.append(t1 - t0)
            s.bwd.append(t2 - t1)
            s.opt.append(t3 - t2)
        self.last_loss = loss.item()
        ledger.reset()


def run_interleaved(runners: dict[str, StrategyRunner], steps: int, warmup: int,
                    rounds: int) -> None:
    """Warm every strategy up, then time ``steps`` steps each in ``rounds`` round-robin blocks.

    Each block starts at a barrier with one untimed step (the previous block ran another
    model, so caches are cold for reasons that are the benchmark's, not the strategy's).
    """
    for runner in runners.values():
        dist.barrier()
        for _ in range(warmup):
            runner.step(record=False)
    per_round = [steps // rounds + (1 if r < steps % rounds else 0) for r in range(rounds)]
    for n in per_round:
        for runner in runners.values():
            dist.barrier()
            runner.step(record=False)
            for _ in range(n):
                runner.step()


def profile_steps(runner: StrategyRunner, steps: int, rank: int,
                  row_limit: int = 25) -> str | None:
    """Profile ``steps`` steps of ``runner`` with :mod:`torch.profiler` on rank 0 (the other
    ranks run the same steps unprofiled); returns rank 0's table sorted by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    dist.barrier()
    if rank != 0:
        for _ in range(steps):
            runner.step(record=False)
        return None
    activities = [ProfilerActivity.CPU]
    if runner.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            runner.step(record=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Arguments of ``phantom-bench``."""
    ap = argparse.ArgumentParser(
        prog="phantom-bench",
        description="Step time of pp, tp and dtensor side by side (interleaved) at the same "
        "width and ranks, with the cost model's prediction from microbenchmarks of the same run. "
        "Launch with torchrun --nproc-per-node P (P >= 2).",
    )
    ap.add_argument("--width", type=int, default=1024, help="hidden width n (divisible by p)")
    ap.add_argument("--layers", type=int, default=4, help="hidden n x n layers L")
    ap.add_argument("--ghosts", type=int, default=None,
                    help="PP ghosts per rank k (default max(1, n/p/16))")
    ap.add_argument("--batch", type=int, default=64, help="rows per step B")
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
    ap.add_argument("--json", type=Path, default=None, help="write every number to this file")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="collective timeout, s")
    return ap.parse_args(argv)


def _validate(args: argparse.Namespace, world: int) -> None:
    def bad(msg: str) -> None:
        raise SystemExit(f"phantom-bench: error: {msg}")

    if world < 2:
        bad("needs p >= 2 ranks: torchrun --standalone --nproc-per-node 2 -m phantom_parallel.bench")
    for key in ("width", "batch", "steps", "rounds", "d_in", "d_out", "micro_trials",
                "in_step_calls"):
        if getattr(args, key) < 1:
            bad(f"--{key.replace('_', '-')}={getattr(args, key)} must be >= 1")
    if args.layers < 0 or args.warmup < 0 or args.profile_steps < 0:
        bad("--layers, --warmup and --profile-steps must be >= 0")
    if args.width % world:
        bad(f"--width={args.width} is not divisible by p={world}")
    m = args.width // world
    if args.ghosts is None:
        args.ghosts = max(1, m // 16)
    if not 1 <= args.ghosts <= m:
        bad(f"--ghosts={args.ghosts} must satisfy 1 <= k <= m = n/p = {m}")
    args.rounds = min(args.rounds, args.steps)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        bad("--device=cuda but torch sees no GPU")
    try:
        resolve_backend(args.backend, args.device)
    except ValueError as err:
        bad(str(err))


def _summary(values: Sequence[float]) -> dict[str, float]:
    med, q1, q3 = median_iqr(values)
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "se_s": median_se(values)}


def _gather(obj: Any, world: int) -> list[Any]:
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def run(args: argparse.Namespace, comm: Comm, device: torch.device) -> dict[str, Any] | None:
    """Run the whole benchmark on this rank; returns the result dict on rank 0, else ``None``."""
    rank, p = comm.rank, comm.world_size
    dtype = DTYPES[args.dtype]
    elem = torch.tensor([], dtype=dtype).element_size()
    loadavg_before = os.getloadavg()
    started = time.time()

    # 1. calibration microbenchmarks ---------------------------------------------------------
    mt, trials = args.micro_time, args.micro_trials
    shapes = gemm_shapes(args.batch, args.width, p, args.ghosts)
    dist.barrier()
    matmul_rows: list[dict[str, Any]] = []
    elem_rows: list[dict[str, Any]] = []
    if rank == 0:  # single process: the other ranks wait at the barrier below
        matmul_rows = bench_matmul(args.batch, shapes, dtype, device, mt, trials)
        elem_rows = bench_elementwise(args.batch, sorted({args.width // p, args.width}),
                                      args.activation, dtype, device, mt, trials)
    dist.barrier()
    # diagnostics: the same GEMMs on all ranks at once (contention between ranks sharing a node)
    concurrent = bench_matmul(args.batch, shapes, dtype, device, mt, trials)
    concurrent_rate = rate_through_origin([(r["seconds"], r["flops"]) for r in concurrent])
    concurrent_rates = _gather(concurrent_rate, p)
    concurrent_all = _gather(concurrent, p)
    # the elementwise kernels on all ranks at once, too
    elem_conc = bench_elementwise(args.batch, sorted({args.width // p, args.width}),
                                  args.activation, dtype, device, mt, trials)
    elem_conc_all = _gather(elem_conc, p)
    coll_sizes = collective_sizes(args.batch, args.width, p, args.ghosts, args.d_out)
    coll_rows = bench_collectives(comm, coll_sizes, dtype, device, mt, trials)
    # collectives as a step calls them: each right after a short compute burst on all ranks
    m = args.width // p
    gen = torch.Generator().manual_seed(args.seed + 7)
    h_b = torch.randn(args.batch, m, generator=gen).to(device, dtype)
    w_b = torch.randn(m, m, generator=gen).to(device, dtype)

    def burst() -> None:
        for _ in range(IN_STEP_BURST_GEMMS):
            torch.mm(h_b, w_b)

    in_step_sizes = {op: sorted({*v, *(x for x in coll_sizes[op] if x in (4096, 262144))})
                     for op, v in step_collective_sizes(args.batch, args.width, p, args.ghosts,
                                                        args.d_out).items()}
    in_step_rows = bench_collectives_in_step(comm, in_step_sizes, burst, dtype, device,
                                             args.in_step_calls, trials)

    # 2. interleaved training steps ----------------------------------------------------------
    cfg = FFNConfig(args.d_in, args.width, args.layers, args.d_out, args.activation)
    runners = {s: StrategyRunner(s, cfg, comm, ghosts=args.ghosts, batch=args.batch,
                                 seed=args.seed, lr=args.lr, device=device, dtype=dtype)
               for s in BENCH_STRATEGIES}
    dist.barrier()  # an Adam step over each strategy's local parameter shapes (throwaway
    # tensors, all ranks at once) plus synthetic sets -> seconds per element and per tensor
    shape_sets = {s: local_param_shapes(r.model) for s, r in runners.items()}
    synthetic = [[(size,)] * count for count in (2, 16) for size in (1024, 262144)]
    opt_rows = bench_optimizer([*shape_sets.values(), *synthetic], args.lr, device, dtype,
                               mt, trials)
    for row, label in zip(opt_rows, [*shape_sets, *(f"{len(x)}x{x[0][0]}" for x in synthetic)],
                          strict=True):
        row["set"] = label
    opt_rows_all = _gather(opt_rows, p)
    adam_s = {s: statistics.fmean(rows[i]["seconds"] for rows in opt_rows_all)
              for i, s in enumerate(shape_sets)}
    run_interleaved(runners, args.steps, args.warmup, args.rounds)
    profiles: dict[str, str | None] = {}
    if args.profile_steps:
        profiles = {s: profile_steps(runners[s], args.profile_steps, rank) for s in ("pp", "tp")}
    loadavg_after = os.getloadavg()
    per_rank = _gather({s: r.samples.__dict__ for s, r in runners.items()}, p)
    hosts = _gather(socket.gethostname(), p)
    losses = {s: r.last_loss for s, r in runners.items()}
    if rank != 0:
        return None

    # 3. analysis (rank 0) -------------------------------------------------------------------
    weighted = [(r["seconds"] / r["seconds"], 1 / r["seconds"], r["wire_bytes"] / r["seconds"])
                for r in coll_rows]
    constants = alphabeta.calibrate(
        weighted, [(r["seconds"], r["flops"]) for r in matmul_rows],
        elementwise_rate=rate_through_origin([(r["seconds"], r["flops"]) for r in elem_rows]),
    )
    fit_err = [(constants.alpha_s + r["wire_bytes"] / constants.beta_bytes_per_s) / r["seconds"] - 1
               for r in coll_rows]
    # extended model: per-op alphas and beta from the in-step collectives; matmul rate and
    # per-GEMM overhead from the GEMMs on all ranks at once (mean over ranks per GEMM);
    # elementwise rate likewise; Adam seconds per element and per tensor (mean over ranks)
    gemm_rows = [(statistics.fmean(rows[i]["seconds"] for rows in concurrent_all),
                  concurrent[i]["flops"]) for i in range(len(concurrent))]
    flop_rate_ext, call_s = alphabeta.calibrate_matmul(gemm_rows)
    elem_rate_ext = rate_through_origin(
        [(statistics.fmean(rows[i]["seconds"] for rows in elem_conc_all), elem_conc[i]["flops"])
         for i in range(len(elem_conc))])
    coll_fit = alphabeta.calibrate_collectives(
        [(r["op"], r["seconds"], r["wire_bytes"]) for r in in_step_rows])
    opt_fit_rows = [(statistics.fmean(rows[i]["seconds"] for rows in opt_rows_all),
                     opt_rows[i]["elements"], opt_rows[i]["tensors"])
                    for i in range(len(opt_rows))]
    s_elem, s_tensor = alphabeta.calibrate_optimizer(opt_fit_rows)
    alphas = [v for key, v in coll_fit.items() if key.startswith("alpha_")]
    extended = alphabeta.AlphaBeta(
        alpha_s=statistics.median(alphas), elementwise_rate=elem_rate_ext,
        flop_rate=flop_rate_ext, matmul_call_s=call_s,
        optimizer_s_per_element=s_elem, optimizer_s_per_tensor=s_tensor, **coll_fit)
    # sensitivity (reported, not the check): the same fit on the per-call medians
    extended_median = dataclasses.replace(extended, **alphabeta.calibrate_collectives(
        [(r["op"], r["seconds_median"], r["wire_bytes"]) for r in in_step_rows]))
    in_step_err = [(extended.alpha(r["op"]) + r["wire_bytes"] / extended.beta_bytes_per_s)
                   / r["seconds"] - 1 for r in in_step_rows]
    gemm_err = [(f / flop_rate_ext + call_s) / t - 1 for t, f in gemm_rows]
    opt_err = [(e * s_elem + n * s_tensor) / t - 1 for t, e, n in opt_fit_rows]
    for row, (t, _, _) in zip(opt_rows, opt_fit_rows, strict=True):
        row["seconds"] = t  # mean over ranks
    shape_kw = {"d_in": args.d_in, "width": args.width, "layers": args.layers,
                "d_out": args.d_out, "batch": args.batch, "p": p, "elem_bytes": elem}
    strategies: dict[str, Any] = {}
    step_samples: dict[str, list[float]] = {}
    cost_of: dict[str, costs.CostBreakdown] = {}
    for s in BENCH_STRATEGIES:
        ranks = [pr[s] for pr in per_rank]
        n = len(ranks[0]["step"])
        step = [max(r["step"][i] for r in ranks) for i in range(n)]
        comm_s = [statistics.fmean(r["comm"][i] for r in ranks) for i in range(n)]
        has_comm = s != "dtensor"
        compute = [a - b for a, b in zip(step, comm_s, strict=True)]
        opt_s = [statistics.fmean(r["opt"][i] for r in ranks) for i in range(n)]
        cost = costs.predict(s, costs.FFNShape(**shape_kw, ghosts=args.ghosts if s == "pp" else 0),
                             optimizer="adam", activation=args.activation)
        cost_of[s] = cost
        step_samples[s] = step
        med_compute = median_iqr(compute if has_comm else step)[0]
        achieved = cost.matmul_flops / med_compute
        strategies[s] = {
            "step": _summary(step),
            "comm": _summary(comm_s) if has_comm else None,
            "compute": _summary(compute) if has_comm else None,
            "compute_no_opt": (_summary([c - o for c, o in zip(compute, opt_s, strict=True)])
                               if has_comm else None),
            "fwd": _summary([statistics.fmean(r["fwd"][i] for r in ranks) for i in range(n)]),
            "bwd": _summary([statistics.fmean(r["bwd"][i] for r in ranks) for i in range(n)]),
            "opt": _summary(opt_s),
            "matmul_flops": cost.matmul_flops,
            "elementwise_flops": cost.elementwise_flops,
            "comm_calls": cost.n_comm_calls,
            "wire_bytes": cost.wire_bytes,
            "achieved_flop_rate": achieved,
            "achieved_fraction": achieved / constants.flop_rate,
            "achieved_basis": "compute" if has_comm else "step (comm not separable)",
            "final_loss": losses[s],
            "samples": {"step_s": step, "comm_s": comm_s if has_comm else None,
                        "per_rank": ranks},
        }
        strategies[s]["param_tensors_per_rank"] = cost.param_tensors_per_rank
        strategies[s]["matmul_calls"] = cost.matmul_calls
        if s in ("pp", "tp"):
            med_step = strategies[s]["step"]["median_s"]
            se = strategies[s]["step"]["se_s"]
            for key, k_s in (("prediction", extended), ("prediction_basic", constants)):
                t = alphabeta.predict_time(cost, k_s)
                strategies[s][key] = {
                    "comm_s": t.comm_s, "compute_s": t.compute_s,
                    "matmul_overhead_s": t.matmul_overhead_s,
                    "elementwise_s": t.elementwise_s, "optimizer_s": t.optimizer_s,
                    "total_s": t.total_s, "measured_over_predicted": med_step / t.total_s,
                    "measured_over_predicted_se": se / t.total_s,
                }
            strategies[s]["prediction"]["adam_microbenchmark_s"] = adam_s[s]
            t_med = alphabeta.predict_time(cost, extended_median)
            strategies[s]["prediction_in_step_median"] = {
                "comm_s": t_med.comm_s, "total_s": t_med.total_s,
                "measured_over_predicted": med_step / t_med.total_s}

    strategies["pp"]["prediction_tp_calibrated"] = tp_calibrated_prediction(strategies, extended,
                                                                            cost_of)
    pp_tp = ratio(step_samples["pp"], step_samples["tp"])
    tp_dt = ratio(step_samples["tp"], step_samples["dtensor"])
    checks = _checks(strategies, tp_dt)
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
        "calibration": {
            "constants": extended.to_dict(),
            "method": "extended model (used by the PP check): per-op alpha + shared beta by "
                      "NNLS (rows weighted by 1/time) of collectives timed right after a compute "
                      "burst on all ranks (mean per call); matmul rate + per-GEMM overhead by "
                      "NNLS over the per-rank GEMMs on all ranks at once; elementwise rate on "
                      "all ranks at once; Adam s/element + s/tensor by NNLS over throwaway "
                      "parameter sets (the strategies' shapes + synthetic)",
            "constants_basic": constants.to_dict(),
            "constants_in_step_median": extended_median.to_dict(),
            "method_basic": "NNLS of back-to-back collective time vs (calls, ring wire bytes), "
                            "rows weighted by 1/time; matmul rate least squares through the "
                            "origin over per-rank GEMMs on rank 0 alone; elementwise rate "
                            "likewise (nominal FLOPs)",
            "in_step_collectives": in_step_rows,
            "in_step_burst_gemms": IN_STEP_BURST_GEMMS,
            "in_step_fit_rel_err_median": statistics.median(abs(e) for e in in_step_err),
            "in_step_fit_rel_err_max": max(abs(e) for e in in_step_err),
            "matmul_fit_rel_err_max": max(abs(e) for e in gemm_err),
            "optimizer": opt_rows, "optimizer_fit_rel_err_max": max(abs(e) for e in opt_err),
            "elementwise_concurrent": elem_conc_all,
            "collective_fit_rel_err_median": statistics.median(abs(e) for e in fit_err),
            "collective_fit_rel_err_max": max(abs(e) for e in fit_err),
            "matmul": matmul_rows, "elementwise": elem_rows, "collectives": coll_rows,
            "flop_rate_concurrent_per_rank": concurrent_rates,
            "matmul_concurrent_rank0": concurrent,
            "adam_step_s": adam_s,
        },
        "strategies": strategies,
        "ratios": {"pp_over_tp": pp_tp[0], "pp_over_tp_se": pp_tp[1],
                   "tp_over_dtensor": tp_dt[0], "tp_over_dtensor_se": tp_dt[1]},
        "checks": checks,
        "profiles": profiles,
    }


def tp_calibrated_prediction(strategies: dict[str, Any], constants: alphabeta.AlphaBeta,
                             cost_of: dict[str, costs.CostBreakdown]) -> dict[str, Any]:
    """PP's step time from the extended model re-calibrated on this run's measured TP steps.

    :func:`phantom_parallel.alphabeta.recalibrate` scales the microbenchmark constants phase by
    phase so that they reproduce TP's measured medians: communication (ledger), compute
    (step - comm - optimizer) and the optimizer step; the model's structure (FLOPs, bytes,
    calls, GEMMs, parameter tensors per strategy) then predicts PP. PP's own steps are not used:
    an out-of-sample prediction from constants "calibrated from measured runs".
    """
    tp, pp = strategies["tp"], strategies["pp"]
    rec = alphabeta.recalibrate(constants, cost_of["tp"], comm_s=tp["comm"]["median_s"],
                            compute_s=tp["compute_no_opt"]["median_s"],
                            optimizer_s=tp["opt"]["median_s"])
    t = alphabeta.predict_time(cost_of["pp"], rec.constants)
    return {"comm_scale": rec.comm_scale, "compute_scale": rec.compute_scale,
            "optimizer_scale": rec.optimizer_scale, "comm_s": t.comm_s,
            "compute_s": t.compute_s + t.elementwise_s, "optimizer_s": t.optimizer_s,
            "total_s": t.total_s,
            "measured_over_predicted": pp["step"]["median_s"] / t.total_s,
            "measured_over_predicted_se": pp["step"]["se_s"] / t.total_s,
            "constants": rec.constants.to_dict()}


def _verdict(ratio_: float) -> str:
    return "PASS" if abs(ratio_ - 1.0) <= PP_TARGET else "MISS"


def _phase_reason(pp: dict[str, Any], pred: dict[str, Any]) -> str:
    """Measured vs predicted per phase of PP (ms), for a missed target."""
    return (
        f"measured {pp['step']['median_s'] * 1e3:.3f} ms vs predicted "
        f"{pred['total_s'] * 1e3:.3f} ms: comm {pp['comm']['median_s'] * 1e3:.3f} vs "
        f"{pred['comm_s'] * 1e3:.3f}; compute {pp['compute_no_opt']['median_s'] * 1e3:.3f} vs "
        f"{pred['compute_s'] * 1e3:.3f}; optimizer {pp['opt']['median_s'] * 1e3:.3f} vs "
        f"{pred['optimizer_s'] * 1e3:.3f} ms"
    )


def _checks(strategies: dict[str, Any], tp_dt: tuple[float, float]) -> dict[str, Any]:
    """PASS/MISS of the two targets (and of the microbenchmark-only diagnostic), with reasons."""
    pp = strategies["pp"]
    cal = pp["prediction_tp_calibrated"]
    micro = pp["prediction"]
    micro_pred = {"total_s": micro["total_s"], "comm_s": micro["comm_s"],
                  "compute_s": micro["compute_s"] + micro["elementwise_s"],
                  "optimizer_s": micro["optimizer_s"]}
    r_cal, r_micro = cal["measured_over_predicted"], micro["measured_over_predicted"]
    ratio_tp, se_tp = tp_dt
    if ratio_tp <= 1.0:
        tp_verdict, tp_reason = "PASS", ""
    elif ratio_tp - 2 * se_tp <= 1.0:
        tp_verdict = "PASS"
        tp_reason = f"slower by {100 * (ratio_tp - 1):.1f}% but within 2 standard errors (noise)"
    else:
        tp_verdict = "MISS"
        tp_reason = f"TP slower than DTensor by {100 * (ratio_tp - 1):.1f}% (> 2 standard errors)"
    target = f"|ratio - 1| <= {PP_TARGET}"
    return {
        "pp_within_15pct_of_model": {
            "verdict": _verdict(r_cal), "ratio": r_cal, "se": cal["measured_over_predicted_se"],
            "target": target,
            "model": "extended model, constants re-calibrated on this run's TP steps "
                     "(PP out of sample)",
            "reason": "" if _verdict(r_cal) == "PASS" else _phase_reason(pp, cal)},
        "pp_within_15pct_of_microbenchmark_model": {
            "verdict": _verdict(r_micro), "ratio": r_micro,
            "se": micro["measured_over_predicted_se"], "target": target,
            "model": "extended model, constants from microbenchmarks only (diagnostic: how much "
                     "in-situ cost the microbenchmarks miss)",
            "reason": "" if _verdict(r_micro) == "PASS" else _phase_reason(pp, micro_pred)},
        "tp_no_slower_than_dtensor": {"verdict": tp_verdict, "ratio": ratio_tp, "se": se_tp,
                                      "target": "ratio <= 1 (within 2 se)", "reason": tp_reason},
    }


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.3f}"


def format_report(res: dict[str, Any]) -> str:
    """Human-readable tables of a result dict of :func:`run`."""
    c, e, cal = res["config"], res["env"], res["calibration"]
    k, kb = cal["constants"], cal["constants_basic"]
    lines = []
    load = e["loadavg_before"]
    shared = load[0] > 1.0  # before the ranks started: other jobs (or a previous run's ranks)
    lines += [
        f"phantom-bench  p={c['world_size']} {e['backend']} {e['device']} {c['dtype']}  "
        f"n={c['width']} m={c['m']} L={c['layers']} k={c['ghosts']} B={c['batch']} "
        f"d_in={c['d_in']} d_out={c['d_out']} act={c['activation']} Adam",
        f"host {e['host']}  torch {e['torch']}  python {e['python']}  cpus {e['cpu_count']}  "
        f"threads/rank {e['threads_per_rank']}  {e['date']}",
        f"loadavg (1/5/15 min) before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after "
        + " ".join(f"{v:.2f}" for v in e["loadavg_after"])
        + ("  -> load > 1 before the run: other jobs (or the previous run) on the machine"
           if shared else ""),
        f"{c['steps']} timed steps per strategy in {c['rounds']} interleaved rounds "
        f"({' -> '.join(BENCH_STRATEGIES)}), {c['warmup']} warm-up steps each",
        "",
        "calibration (microbenchmarks of this run, not the step times):",
        " basic (the original 4-constant model, for comparison):",
        f"  matmul rate      {kb['flop_rate'] / 1e9:9.2f} GFLOP/s  (per-rank GEMMs, rank 0 alone; "
        "the same GEMMs on all ranks at once: "
        + ", ".join(f"{r / 1e9:.2f}" for r in cal["flop_rate_concurrent_per_rank"])
        + " GFLOP/s per rank)",
        f"  elementwise rate {kb['elementwise_rate'] / 1e9:9.2f} GFLOP/s  (nominal FLOPs)",
        f"  alpha            {kb['alpha_s'] * 1e6:9.1f} us per collective, back-to-back;  beta "
        + _gbs(kb["beta_bytes_per_s"])
        + f"  (fit rel. error median {100 * cal['collective_fit_rel_err_median']:.0f}%, "
        f"max {100 * cal['collective_fit_rel_err_max']:.0f}%)",
        " extended (microbenchmarks; re-calibrated on the TP steps for the PP target):",
        f"  alpha in step    all_reduce {k['alpha_all_reduce_s'] * 1e6:.1f}, all_gather "
        f"{k['alpha_all_gather_s'] * 1e6:.1f}, reduce_scatter {k['alpha_reduce_scatter_s'] * 1e6:.1f}"
        f" us per call;  beta {_gbs(k['beta_bytes_per_s'])}  (each call after "
        f"{cal['in_step_burst_gemms']} GEMMs on all ranks; mean per call; fit rel. error median "
        f"{100 * cal['in_step_fit_rel_err_median']:.0f}%, max "
        f"{100 * cal['in_step_fit_rel_err_max']:.0f}%)",
        f"  matmul           {k['flop_rate'] / 1e9:9.2f} GFLOP/s + {k['matmul_call_s'] * 1e6:.1f} us "
        f"per GEMM (all ranks at once; fit rel. error max "
        f"{100 * cal['matmul_fit_rel_err_max']:.0f}%)",
        f"  elementwise rate {k['elementwise_rate'] / 1e9:9.2f} GFLOP/s  (all ranks at once)",
        f"  Adam step        {k['optimizer_s_per_element'] * 1e9:.3f} ns per element + "
        f"{k['optimizer_s_per_tensor'] * 1e6:.1f} us per tensor (fit rel. error max "
        f"{100 * cal['optimizer_fit_rel_err_max']:.0f}%)",
        "",
        "measured per step (ms; step = max over ranks, median [IQR]; comm from the ledger):",
        f"  {'strategy':9} {'step':>9} {'IQR':>8} {'comm':>8} {'compute':>8} {'fwd':>8} "
        f"{'bwd':>8} {'opt':>8} {'MFLOP':>8} {'GFLOP/s':>8} {'of rate':>8}",
    ]
    for s, d in res["strategies"].items():
        lines.append(
            f"  {s:9} {_ms(d['step']['median_s']):>9} {_ms(d['step']['iqr_s']):>8} "
            f"{_ms(d['comm'] and d['comm']['median_s']):>8} "
            f"{_ms(d['compute'] and d['compute']['median_s']):>8} "
            f"{_ms(d['fwd']['median_s']):>8} {_ms(d['bwd']['median_s']):>8} "
            f"{_ms(d['opt']['median_s']):>8} {d['matmul_flops'] / 1e6:>8.1f} "
            f"{d['achieved_flop_rate'] / 1e9:>8.2f} {100 * d['achieved_fraction']:>7.1f}%"
            + ("  (rate on step time)" if d["comm"] is None else "")
        )
    lines += [
        "",
        "cost model (alphabeta.predict_time, no overlap; ms; matmul includes per-GEMM overhead):",
        f"  {'strategy':9} {'model':9} {'comm':>8} {'matmul':>8} {'elemw':>8} {'optim':>8} "
        f"{'total':>8} {'measured':>9} {'meas/pred':>10}",
    ]
    for s in ("pp", "tp"):
        d = res["strategies"][s]
        for key, label in (("prediction_basic", "basic"), ("prediction", "extended")):
            pr = d[key]
            lines.append(
                f"  {s:9} {label:9} {_ms(pr['comm_s']):>8} {_ms(pr['compute_s']):>8} "
                f"{_ms(pr['elementwise_s']):>8} {_ms(pr['optimizer_s']):>8} "
                f"{_ms(pr['total_s']):>8} {_ms(d['step']['median_s']):>9} "
                f"{pr['measured_over_predicted']:>6.3f} ± {pr['measured_over_predicted_se']:.3f}"
            )
    lines.append(
        "  sensitivity: in-step alphas from per-call medians instead of means: " + ", ".join(
            f"{s} comm {_ms(res['strategies'][s]['prediction_in_step_median']['comm_s'])} total "
            f"{_ms(res['strategies'][s]['prediction_in_step_median']['total_s'])} meas/pred "
            f"{res['strategies'][s]['prediction_in_step_median']['measured_over_predicted']:.3f}"
            for s in ("pp", "tp")))
    lines.append(
        "  param tensors per rank: " + ", ".join(
            f"{s} {res['strategies'][s]['param_tensors_per_rank']}" for s in ("pp", "tp"))
        + "; GEMMs per step: " + ", ".join(
            f"{s} {res['strategies'][s]['matmul_calls']}" for s in ("pp", "tp")))
    ra, ch = res["ratios"], res["checks"]
    pp_c, tp_c = ch["pp_within_15pct_of_model"], ch["tp_no_slower_than_dtensor"]
    pp_m = ch["pp_within_15pct_of_microbenchmark_model"]
    pp_cal = res["strategies"]["pp"]["prediction_tp_calibrated"]
    lines += [
        f"  pp        TP-calib. {_ms(pp_cal['comm_s']):>8} {_ms(pp_cal['compute_s']):>8} "
        f"{'(incl.)':>8} {_ms(pp_cal['optimizer_s']):>8} {_ms(pp_cal['total_s']):>8} "
        f"{_ms(res['strategies']['pp']['step']['median_s']):>9} "
        f"{pp_cal['measured_over_predicted']:>6.3f} ± {pp_cal['measured_over_predicted_se']:.3f}",
        f"  TP-calib.: the extended constants re-calibrated on this run's TP steps, phase by "
        f"phase (comm x{pp_cal['comm_scale']:.2f}, compute x{pp_cal['compute_scale']:.2f}, "
        f"optimizer x{pp_cal['optimizer_scale']:.2f}); PP's steps not used",
        "",
        "ratios of median step times (± standard error from the IQRs):",
        f"  PP/TP       = {ra['pp_over_tp']:.3f} ± {ra['pp_over_tp_se']:.3f}",
        f"  TP/DTensor  = {ra['tp_over_dtensor']:.3f} ± {ra['tp_over_dtensor_se']:.3f}",
        "",
        "targets:",
        f"  PP measured/predicted = {pp_c['ratio']:.3f} ± {pp_c['se']:.3f}  (model calibrated on "
        f"the measured TP steps, PP out of sample) (target within 15%)  {pp_c['verdict']}"
        + (f"\n    reason: {pp_c['reason']}" if pp_c["reason"] else ""),
        f"  TP/DTensor            = {tp_c['ratio']:.3f} ± {tp_c['se']:.3f}  "
        f"(target <= 1.0)       {tp_c['verdict']}"
        + (f"\n    note: {tp_c['reason']}" if tp_c["reason"] else ""),
        "diagnostic (not a target):",
        f"  PP measured/predicted = {pp_m['ratio']:.3f} ± {pp_m['se']:.3f}  (microbenchmark "
        f"constants only; the in-situ cost they miss)  {pp_m['verdict']}"
        + (f"\n    where: {pp_m['reason']}" if pp_m["reason"] else ""),
    ]
    for s, table in (res.get("profiles") or {}).items():
        if table:
            lines += ["", f"torch.profiler, {s.upper()} steps on rank 0 (sorted by self CPU time; "
                      "a collective's wait shows as self time of its autograd Function):", table]
    return "\n".join(lines) + "\n"


def _gbs(v: float | str) -> str:
    return "inf" if v == "inf" or (isinstance(v, float) and math.isinf(v)) else f"{v / 1e9:.3f} GB/s"


def _jsonable(obj: Any) -> Any:
    """``obj`` with non-finite floats as strings ("nan", "inf") so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {key: _jsonable(v) for key, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-bench`` entry point (run under torchrun on every rank)."""
    args = parse_args(argv)
    env = read_launch_env()
    _validate(args, env.world_size)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // env.world_size))
    comm = init_distributed(env, args.backend, args.device, args.timeout_s)
    assert comm is not None
    device = torch.device(args.device if args.device != "cuda"
                          else f"cuda:{torch.cuda.current_device()}")
    try:
        res = run(args, comm, device)
        if res is not None:
            sys.stdout.write(format_report(res))
            sys.stdout.flush()
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(_jsonable(res), indent=1, allow_nan=False) + "\n")
        dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
