"""Task-hardness check: does a dense student of half the width reach a worse validation loss?

Generates (or reuses) a ``phantom-data`` dataset, then trains plain single-process
``nn.Sequential`` students (``d_in -> n (L hidden n x n layers) -> d_out``, tanh, Adam, MSE) of each
width for a few epochs and several seeds on the CPU, and prints the final validation MSE per run
and the mean / std / min / max per width, plus reference points: the noise floor (``noise^2``),
the variance of the validation targets and a linear least-squares baseline.

Example (the numbers in docs/method.md "Task hardness evidence")::

    .venv/bin/python benchmarks/task_hardness.py --data /tmp/phantom-hardness

Total runtime with the defaults: about 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from phantom_parallel.data import (
    DataConfig,
    ShardedDataset,
    generate,
    iterate_batches,
    steps_per_epoch,
)

ACTS = {"tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU}


def student(d_in: int, width: int, layers: int, d_out: int, act: str = "tanh") -> nn.Sequential:
    """Dense FFN ``d_in -> width (layers hidden width x width) -> d_out``."""
    mods: list[nn.Module] = [nn.Linear(d_in, width), ACTS[act]()]
    for _ in range(layers):
        mods += [nn.Linear(width, width), ACTS[act]()]
    mods.append(nn.Linear(width, d_out))
    return nn.Sequential(*mods)


def train_one(
    train: ShardedDataset,
    val: tuple[torch.Tensor, torch.Tensor],
    width: int,
    layers: int,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    act: str = "tanh",
) -> float:
    """Train one student; return its final validation MSE."""
    torch.manual_seed(seed)
    model = student(train.d_in, width, layers, train.d_out, act)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = epochs * steps_per_epoch(train.rows, batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    loss_fn = nn.MSELoss()
    for epoch in range(epochs):
        for x, y in iterate_batches(train, batch, epoch, seed):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return float(loss_fn(model(val[0]), val[1]))


def linear_baseline(train: ShardedDataset, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Validation MSE of the least-squares affine fit on the training split."""
    x, y = train.arrays()
    X = np.hstack([x.astype(np.float64), np.ones((x.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(X, y.astype(np.float64), rcond=None)
    xv = np.hstack([val[0].numpy().astype(np.float64), np.ones((val[0].shape[0], 1))])
    return float(np.mean((xv @ coef - val[1].numpy()) ** 2))


def main(argv: list[str] | None = None) -> int:
    d = DataConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/phantom-hardness"))
    ap.add_argument("--teacher-width", type=int, default=d.teacher_width)
    ap.add_argument("--teacher-layers", type=int, default=d.teacher_layers)
    ap.add_argument("--teacher-gain", type=float, default=d.teacher_gain)
    ap.add_argument("--teacher-rank", type=int, default=d.teacher_rank)
    ap.add_argument("--activation", default=d.activation)
    ap.add_argument("--noise", type=float, default=d.noise)
    ap.add_argument("--n-train", type=int, default=d.n_train)
    ap.add_argument("--n-val", type=int, default=d.n_val)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--student-activation", choices=sorted(ACTS), default="tanh")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace a dataset of another configuration in --data (else refused)")
    args = ap.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        ap.error(f"--json {args.json}: folder {args.json.parent} does not exist")
    if args.threads < 1:
        ap.error(f"--threads {args.threads}: must be >= 1")
    torch.set_num_threads(args.threads)

    try:
        cfg = DataConfig(
            d_in=d.d_in,
            d_out=d.d_out,
            teacher_width=args.teacher_width,
            teacher_layers=args.teacher_layers,
            teacher_gain=args.teacher_gain,
            teacher_rank=args.teacher_rank,
            activation=args.activation,
            noise=args.noise,
            n_train=args.n_train,
            n_val=args.n_val,
            seed=args.data_seed,
        )
    except ValueError as err:
        ap.error(f"data configuration: {err}")
    t0 = time.perf_counter()
    try:
        generate(cfg, args.data, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as err:
        ap.error(f"--data {args.data}: {err}")
    train, val_ds = ShardedDataset(args.data, "train"), ShardedDataset(args.data, "val")
    val = val_ds.get_batch(np.arange(val_ds.rows))
    var_y = float(val[1].var(dim=0, unbiased=False).mean())
    lin = linear_baseline(train, val)
    print(f"data: {cfg}")
    print(f"data ready in {time.perf_counter() - t0:.1f}s")
    print(f"val target variance (mean over outputs): {var_y:.4f}")
    print(f"noise floor noise^2:                    {cfg.noise**2:.4f}")
    print(f"linear least-squares val MSE:           {lin:.4f}  (R^2 = {1 - lin / var_y:.3f})")

    results: dict[int, list[float]] = {}
    for width in args.widths:
        for seed in args.seeds:
            t1 = time.perf_counter()
            loss = train_one(
                train,
                val,
                width,
                args.layers,
                args.epochs,
                args.batch,
                args.lr,
                seed,
                args.student_activation,
            )
            results.setdefault(width, []).append(loss)
            print(
                f"width {width:5d} seed {seed}: val MSE {loss:.5f} "
                f"({time.perf_counter() - t1:.1f}s)",
                flush=True,
            )
    print(
        f"\nstudents: {args.layers} hidden layers, {args.student_activation}, Adam lr {args.lr} (cosine), "
        f"batch {args.batch}, {args.epochs} epochs, seeds {args.seeds}"
    )
    print("width  mean_val_mse  std      min      max")
    for width, losses in results.items():
        sd = statistics.stdev(losses) if len(losses) > 1 else 0.0
        print(
            f"{width:5d}  {statistics.mean(losses):.5f}      {sd:.5f}  "
            f"{min(losses):.5f}  {max(losses):.5f}"
        )
    if len(args.widths) == 2:
        big, small = (results[w] for w in args.widths)
        print(
            f"gap (mean {args.widths[1]} - mean {args.widths[0]}): "
            f"{statistics.mean(small) - statistics.mean(big):.5f}; "
            f"worst {args.widths[0]} vs best {args.widths[1]}: "
            f"{max(big):.5f} vs {min(small):.5f}"
        )
    print(f"total {time.perf_counter() - t0:.1f}s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "config": vars(cfg),
                    "var_y": var_y,
                    "linear_mse": lin,
                    "results": {str(k): v for k, v in results.items()},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
