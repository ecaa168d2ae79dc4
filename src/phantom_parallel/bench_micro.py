"""Microbenchmarks of ``phantom-bench``: timing helpers, GEMMs of the per-rank layer shapes,
elementwise kernels, Adam steps and collectives as a training step calls them. Times in seconds, rates in FLOP/s or bytes/s, sizes in elements or bytes as named."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from phantom_parallel import costs
from phantom_parallel.comm import Comm
from phantom_parallel.models import ACTIVATIONS
from phantom_parallel.train_setup import make_optimizer

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
    if p > 1 and ghosts > 0:  # the decompression GEMM's inner size
        cost = costs.predict("pp", costs.FFNShape(1, width, 1, 1, batch, p, ghosts))
        rows = next(x for x in cost.layers if x.kind == "phantom").gemms_fwd[2][1]
        shapes += [("pp-compress", m, ghosts), ("pp-decompress", rows, m)]
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


def bench_optimizer(shape_sets: Sequence[Sequence[tuple[int, ...]]], lr: float,
                    device: torch.device, dtype: torch.dtype, min_time_s: float,
                    trials: int) -> list[dict[str, Any]]:
    """Seconds of one Adam step per set of parameter shapes, each over fresh, throwaway tensors
    with random gradients (never the timed models or optimizers), built as the trainer builds
    its optimizer (:func:`phantom_parallel.train_setup.make_optimizer`: fused over plain
    tensors).

    Returns:
        One row per set: tensors, elements, seconds.
    """
    rows = []
    for shapes in shape_sets:
        params = torch.nn.ParameterList(
            torch.zeros(shp, device=device, dtype=dtype) for shp in shapes)
        for t in params:
            t.grad = torch.randn_like(t)
        opt = make_optimizer("adam", params, lr=lr)
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


GRID_SIZES = (4096, 262144)
"""Payload element counts timed besides a step's own for all-reduce and all-gather, so that
the bandwidth fit sees a small and a large message."""


def in_step_sizes(batch: int, width: int, p: int, ghosts: int,
                  d_out: int) -> dict[str, list[int]]:
    """Payload element counts of the collectives a PP or TP step calls (costs convention:
    all-gather the local chunk, reduce-scatter the full input), plus :data:`GRID_SIZES`."""
    return {
        "all_reduce": sorted({batch * width, batch * d_out, *GRID_SIZES}),
        "all_gather": sorted({batch * ghosts, batch * (width // p), *GRID_SIZES}),
        "reduce_scatter": [batch * p * ghosts],
    }
