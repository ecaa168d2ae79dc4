"""One emulated rank's training step and its measurement for ``phantom-emulate``: the model,
optimizer and fixed batch (:class:`Step`), phase timing by CUDA events or the host clock,
and one result row per (strategy, p): one strategy after another (:func:`measure`) or side by
side in interleaved rounds (:func:`measure_rounds`)."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.emulate_comm import CountOps, StandInComm
from phantom_parallel.emulate_energy import EnergyMeter
from phantom_parallel.models import FFNConfig, build_model
from phantom_parallel.train_args import DTYPES
from phantom_parallel.train_setup import make_optimizer


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: reset this process's VmHWM (peak resident set)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def _peak_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Step:
    """One rank's model, optimizer and fixed batch; :meth:`run` is one training step."""

    def __init__(self, strategy: str, p: int, args: argparse.Namespace, device: torch.device):
        dtype = DTYPES[args.dtype]
        cfg = FFNConfig(args.d_in, args.width, args.layers, args.d_out)
        self.rank = 0 if strategy == "serial" else args.rank
        comm = None if strategy == "serial" else StandInComm(p, self.rank)
        self.model = build_model(strategy, cfg, comm,  # type: ignore[arg-type]
                                 ghosts=args.ghosts if strategy == "pp" else None, seed=0,
                                 device=device, dtype=dtype)
        self.opt = make_optimizer("adam", self.model, lr=1e-4, capturable=args.cuda_graph)
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(args.batch, args.d_in, generator=gen).to(device, dtype)
        self.y = torch.randn(args.batch, args.d_out, generator=gen).to(device, dtype)
        self.cuda = device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None

    def _mark(self, marks: list[Any] | None, i: int) -> None:
        """Phase boundary i: record CUDA event ``marks[i]``, or append the host clock."""
        if marks is None:
            return
        if self.cuda:
            marks[i].record()
        else:
            marks.append(time.perf_counter())

    def run(self, marks: list[Any] | None = None) -> None:
        """One step. ``marks``: 4 CUDA events to record at the phase boundaries (start, after
        forward + loss, after backward, after the optimizer), or on CPU an empty list that
        receives the 4 host times; in graph mode only the first and last are recorded."""
        self._mark(marks, 0)
        if self.graph is not None:
            self.graph.replay()
            self._mark(marks, 3)
            return
        loss = F.mse_loss(self.model(self.x).float(), self.y.float())
        self._mark(marks, 1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._mark(marks, 2)
        self.opt.step()
        self._mark(marks, 3)

    def capture(self) -> None:
        """Warm up on a side stream, then capture one whole step as a CUDA graph."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            F.mse_loss(self.model(self.x).float(), self.y.float()).backward()
            self.opt.step()
        self.graph = graph


def _phase_times(step: Step, steps: int) -> list[tuple[float, float, float, float]]:
    """(forward, backward, optimizer, step) seconds of each timed step; NaN phases in graph
    mode. CUDA: events only, one host sync after the last step."""
    nan = float("nan")
    if not step.cuda:
        out = []
        for _ in range(steps):
            marks: list[float] = []
            step.run(marks)
            a, b, c, d = marks
            out.append((b - a, c - b, d - c, d - a))
        return out
    events = [[torch.cuda.Event(enable_timing=True) for _ in range(4)] for _ in range(steps)]
    torch.cuda.synchronize()
    for ev in events:
        step.run(ev)
    torch.cuda.synchronize()
    if step.graph is not None:
        return [(nan, nan, nan, ev[0].elapsed_time(ev[3]) / 1e3) for ev in events]
    return [tuple(ev[i].elapsed_time(ev[j]) / 1e3 for i, j in ((0, 1), (1, 2), (2, 3), (0, 3)))
            for ev in events]  # type: ignore[misc]


HOST_STEPS = 10
"""Steps timed for :func:`host_dispatch_s` (at most ``--steps``)."""


def host_dispatch_s(step: Step, steps: int) -> float:
    """Median host seconds to issue one step to an idle device: the host clock around
    :meth:`Step.run`, the device synchronised before each step and not waited for within it.
    On an accelerator this is the host's dispatch cost alone (an eager step is host-bound
    when it is close to the step time; a graph step's is one replay launch); on CPU, where
    the host computes, the step itself."""
    out = []
    for _ in range(steps):
        if step.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step.run()
        out.append(time.perf_counter() - t0)
    if step.cuda:
        torch.cuda.synchronize()
    return statistics.median(out)


def prepare(strategy: str, p: int, args: argparse.Namespace, device: torch.device,
            ) -> tuple[Step, dict[str, Any]]:
    """Build one strategy's step, count its matmul FLOPs and operators, warm it up (and capture
    it with ``--cuda-graph``). Returns the step and ``{matmul_flops, ops_per_step,
    view_ops_per_step, peak_memory_bytes}``. The operators are those of a steady step (the
    second: the first also creates Adam's state, 3 operators per parameter tensor). On CUDA
    the peak is above what was allocated before (so steps built side by side do not count
    each other), on CPU it is the process's peak resident set."""
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    _peak_reset(device)
    step = Step(strategy, p, args, device)
    with FlopCounterMode(display=False) as flops:
        F.mse_loss(step.model(step.x).float(), step.y.float()).backward()
    step.model.zero_grad(set_to_none=True)
    step.run()  # the first step also creates the optimizer's state: not a step's operators
    with CountOps() as ops:
        step.run()
    for _ in range(args.warmup):
        step.run()
    if args.cuda_graph:
        step.capture()
    peak = _peak_bytes(device)
    return step, {"matmul_flops": int(flops.get_total_flops()), "ops_per_step": ops.count,
                  "view_ops_per_step": ops.views,
                  "peak_memory_bytes": None if peak is None else peak - base}


def _row(strategy: str, p: int, args: argparse.Namespace, device: torch.device, step: Step,
         info: dict[str, Any], times: list[tuple[float, float, float, float]],
         meter: EnergyMeter) -> dict[str, Any]:
    """The result row of one (strategy, p) from its timed steps' phase times (s)."""
    fwd, bwd, opt, total = (statistics.median(col) for col in zip(*times, strict=True))
    host = host_dispatch_s(step, min(args.steps, HOST_STEPS))
    energy = meter.measure(step.run, total, device)
    elem = torch.tensor([], dtype=DTYPES[args.dtype]).element_size()
    shape = FFNShape(args.d_in, args.width, args.layers, args.d_out, args.batch, p,
                     args.ghosts if strategy == "pp" else 0, elem)
    graph = step.graph is not None
    return {
        "strategy": strategy, "p": p, "rank": step.rank, "n": args.width, "layers": args.layers,
        "k": args.ghosts if strategy == "pp" else None, "batch": args.batch, "dtype": args.dtype,
        "device": device.type, "cuda_graph": graph, "step_s": total, "host_s": host,
        "fwd_s": None if graph else fwd, "bwd_s": None if graph else bwd,
        "opt_s": None if graph else opt, "matmul_flops": info["matmul_flops"],
        "predicted_matmul_flops": predict(strategy, shape).matmul_flops,
        "achieved_flop_rate": info["matmul_flops"] / total, "ops_per_step": info["ops_per_step"],
        "view_ops_per_step": info["view_ops_per_step"],
        "peak_memory_bytes": info["peak_memory_bytes"], **energy,
    }


ROW_KEYS = frozenset({
    "strategy", "p", "rank", "n", "layers", "k", "batch", "dtype", "device", "cuda_graph",
    "step_s", "host_s", "fwd_s", "bwd_s", "opt_s", "matmul_flops", "predicted_matmul_flops",
    "achieved_flop_rate", "ops_per_step", "view_ops_per_step", "peak_memory_bytes",
    "energy_j_per_step", "energy_method"})
"""The fields of one row of ``phantom-emulate --json`` (:func:`_row`)."""


def measure(strategy: str, p: int, args: argparse.Namespace, device: torch.device,
            meter: EnergyMeter) -> dict[str, Any]:
    """One row: median phase times (s), host dispatch time (:func:`host_dispatch_s`), counted
    and predicted matmul FLOPs, ops, memory and (when a sensor exists) energy per step."""
    step, info = prepare(strategy, p, args, device)
    return _row(strategy, p, args, device, step, info, _phase_times(step, args.steps), meter)


def measure_rounds(strategies: list[str], p: int, args: argparse.Namespace,
                   device: torch.device, meter: EnergyMeter) -> list[dict[str, Any]]:
    """Rows of several strategies timed side by side: all steps are built and warmed up first,
    then ``args.rounds`` rounds each run ``args.steps // args.rounds`` timed steps of every
    strategy in turn, the order reversed every other round (A B, B A, ...), so that a drift of
    the host or the device between rounds falls on every strategy alike. Each row adds
    ``rounds`` and ``round_step_s`` (its median step per round, s); the medians over all timed
    steps are as in :func:`measure`. Serial runs at p = 1 whatever ``p`` is."""
    ranks = {s: 1 if s == "serial" else p for s in strategies}
    built = [(s, ranks[s], *prepare(s, ranks[s], args, device)) for s in strategies]
    per_round = args.steps // args.rounds
    times: dict[str, list[tuple[float, float, float, float]]] = {s: [] for s in strategies}
    medians: dict[str, list[float]] = {s: [] for s in strategies}
    for r in range(args.rounds):
        for s, _, step, _ in (built if r % 2 == 0 else built[::-1]):
            t = _phase_times(step, per_round)
            times[s] += t
            medians[s].append(statistics.median(x[3] for x in t))
    return [{**_row(s, ps, args, device, step, info, times[s], meter),
             "rounds": args.rounds, "round_step_s": medians[s]}
            for s, ps, step, info in built]


def round_ratios(rows: list[dict[str, Any]], reference: str = "tp") -> list[dict[str, Any]]:
    """Per p, each strategy's step time over ``reference``'s, round by round (rows of
    :func:`measure_rounds`): ``{p, strategy, vs, median, min, max, rounds}``."""
    out = []
    for ref in (r for r in rows if r["strategy"] == reference and "round_step_s" in r):
        for r in rows:
            if r["p"] != ref["p"] or r is ref or "round_step_s" not in r:
                continue
            q = [a / b for a, b in zip(r["round_step_s"], ref["round_step_s"], strict=True)]
            out.append({"p": ref["p"], "strategy": r["strategy"], "vs": reference,
                        "median": statistics.median(q), "min": min(q), "max": max(q),
                        "rounds": len(q)})
    return out
