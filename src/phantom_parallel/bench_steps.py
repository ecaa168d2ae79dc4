"""Training steps of ``phantom-bench``: one strategy's model, optimizer and batch per rank
(:class:`StrategyRunner`), timed interleaved round-robin (:func:`run_interleaved`), seconds."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from phantom_parallel.bench_micro import _sync
from phantom_parallel.comm import Comm
from phantom_parallel.constants import STRATEGIES
from phantom_parallel.models import FFNConfig, build_model
from phantom_parallel.train_setup import make_optimizer

BENCH_STRATEGIES: tuple[str, ...] = tuple(
    sorted((s for s in STRATEGIES if s not in ("serial", "fsdp")), key=lambda s: s != "pp"))
"""Strategies timed side by side (those with a collective per layer), in round-robin order: PP
first, then the others in :data:`~phantom_parallel.constants.STRATEGIES` order."""


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
    """One strategy's model, Adam optimizer (the trainer's: :func:`make_optimizer`, fused over
    plain tensors) and fixed synthetic batch on this rank.

    Every rank draws the same ``x`` (B x d_in) and ``y`` (B x d_out) from ``seed`` (TP and
    DTensor need a replicated input).
    """

    def __init__(self, strategy: str, cfg: FFNConfig, comm: Comm, *, ghosts: int, batch: int,
                 seed: int, lr: float, device: torch.device, dtype: torch.dtype) -> None:
        self.strategy, self.comm, self.device = strategy, comm, device
        self.model = build_model(strategy, cfg, comm, ghosts=ghosts if strategy == "pp" else None,
                                 seed=seed, device=device, dtype=dtype)
        self.optimizer = make_optimizer("adam", self.model, lr=lr)
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
