"""Validation during training (``evals.csv``) and the held-out test loss at the end.

:class:`Evaluations` decides when the trainer validates (every ``--eval-every`` steps, at each
epoch end, and once after the last step), keeps the cumulative measured training time
(the sum of ``step_time_s``, evaluations excluded) and appends one ``evals.csv`` row per
evaluated step (:data:`phantom_parallel.runlog.EVAL_FIELDS`). On resume it reloads the time
and the steps already evaluated from the (truncated) logs, so no step is evaluated twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from phantom_parallel.data import ShardedDataset, load_manifest
from phantom_parallel.runlog import RunLog

EVAL_BATCH = 1024
"""Minimum rows per evaluation batch (larger when the training batch is)."""


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ShardedDataset, batch_size: int, device: torch.device,
             dtype: torch.dtype) -> float:
    """Mean squared error over the whole split (float64 accumulation), every row on every
    rank."""
    total, rows = 0.0, 0
    for start in range(0, data.rows, batch_size):
        idx = range(start, min(start + batch_size, data.rows))
        x, y = data.get_batch(list(idx))
        out = model(x.to(device, dtype))
        total += F.mse_loss(out.double(), y.to(device).double(), reduction="sum").item()
        rows += len(idx) * y.shape[1]
    return total / rows


def open_test_split(data_dir: Path) -> ShardedDataset | None:
    """The dataset's test split, or ``None`` when it has none (made before the split existed,
    or ``--n-test 0``): its test loss is then null."""
    splits = load_manifest(data_dir)["splits"]
    if "test" not in splits or int(splits["test"]["rows"]) == 0:
        return None
    return ShardedDataset(data_dir, "test")


def steps_per_epoch_of(data_dir: Path, batch_size: int) -> int:
    """Optimizer steps per epoch (``train rows // batch size``) from the dataset manifest."""
    return int(load_manifest(data_dir)["splits"]["train"]["rows"]) // batch_size


def check_eval_every(eval_every: int, steps_per_epoch: int) -> str | None:
    """The error message for a bad ``--eval-every`` (0 = epoch ends only), else ``None``."""
    if eval_every == 0 or 1 <= eval_every <= steps_per_epoch:
        return None
    return (f"--eval-every={eval_every} must be 0 (epoch ends only) or between 1 and the "
            f"{steps_per_epoch} steps of an epoch")


class Evaluations:
    """Validation schedule and ``evals.csv`` writer of one run (rows written by rank 0).

    Args:
        log: the run's log (opened; truncated to the checkpoint on resume).
        every: ``--eval-every`` (0: epoch ends only).
        val: the validation split. batch_size: the training batch (rows).
        resumed: whether the run resumed (then time and evaluated steps come from the logs).
    """

    def __init__(self, log: RunLog, every: int, val: ShardedDataset, batch_size: int,
                 device: torch.device, dtype: torch.dtype, resumed: bool) -> None:
        self.log, self.every, self.val = log, every, val
        self.batch_size, self.device, self.dtype = batch_size, device, dtype
        self.train_time_s = 0.0
        self.done: set[int] = set()
        if resumed and log.active:
            import pandas as pd

            metrics = pd.read_csv(log.path("metrics.csv"))
            self.train_time_s = float(pd.to_numeric(metrics["step_time_s"]).sum())
            evals = log.path("evals.csv")
            if evals.exists() and evals.stat().st_size:
                self.done = {int(s) for s in pd.read_csv(evals)["step"]}

    def add_step(self, step_time_s: float) -> None:
        """Count one measured optimizer step (seconds)."""
        self.train_time_s += step_time_s

    def due(self, step: int) -> bool:
        """Whether ``step`` (optimizer steps done) is an ``--eval-every`` step."""
        return self.every > 0 and step % self.every == 0

    def run(self, model: torch.nn.Module, step: int, epoch: int) -> float:
        """Validate now (all ranks); append the row for ``step`` unless it has one. Returns
        the validation loss (MSE)."""
        loss = evaluate(model, self.val, max(self.batch_size, EVAL_BATCH), self.device, self.dtype)
        if step not in self.done:
            self.done.add(step)
            self.log.evaluation({"step": step, "samples": step * self.batch_size, "epoch": epoch,
                                 "val_loss": repr(loss), "train_time_s": repr(self.train_time_s),
                                 "t_ns": time.time_ns()})
        return loss

    def test(self, model: torch.nn.Module, test: ShardedDataset | None) -> float | None:
        """The test loss (MSE) of ``model`` (all ranks), ``None`` without a test split."""
        if test is None:
            return None
        return evaluate(model, test, max(self.batch_size, EVAL_BATCH), self.device, self.dtype)
