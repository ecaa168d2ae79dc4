"""The run of ``phantom-train``: build the model, train it epoch by epoch (resuming from the
run folder's last checkpoint), validate, checkpoint, and write the run folder's logs.

Each rank calls :func:`run`; rank 0 writes the files (``manifest.json``, ``metrics.csv``,
``epochs.csv``, ``evals.csv``, ``events.jsonl`` and ``summary.json``, through :class:`RunLog`).
A resume first reads and checks everything it needs (checkpoint, run manifest, logs) on every
rank; a problem anywhere stops all ranks with one line before the run folder is written.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from phantom_parallel.atomic import read_json
from phantom_parallel.checkpoint import Checkpointer, CheckpointError, Position, all_ranks
from phantom_parallel.comm import Comm
from phantom_parallel.data import ShardedDataset, iterate_batches
from phantom_parallel.distributed import LaunchEnv
from phantom_parallel.evals import Evaluations, open_test_split, steps_per_epoch_of
from phantom_parallel.models import FFNConfig, build_model
from phantom_parallel.runlog import RunLog
from phantom_parallel.train_args import DTYPES, LEGACY_RESUME, RESUME_KEYS, InputError
from phantom_parallel.train_counts import (
    count_distinct_params,
    count_matmul_flops,
    local_shard,
    mean_over_ranks,
    peak_memory_bytes,
)
from phantom_parallel.train_record import (
    gather_hosts,
    gather_rank_devices,
    logged_losses,
    read_run_manifest,
    run_manifest,
    summarise,
)
from phantom_parallel.train_setup import make_optimizer, mse_loss, start_power_sampler, sync_device


def run(args: argparse.Namespace, env: LaunchEnv, comm: Comm | None) -> int:
    """Train (or resume, or skip a finished) run ``args.run_dir`` on this rank; returns the
    exit status (0)."""
    rank, world = env.rank, env.world_size
    device = torch.device(args.device if args.device != "cuda" else f"cuda:{torch.cuda.current_device()}")
    dtype = DTYPES[args.dtype]
    run_dir: Path = args.run_dir
    finished = (run_dir / "summary.json").exists()
    if finished and not _goes_on(args, run_dir, rank):
        if rank == 0:
            print(f"phantom-train: {run_dir} is complete (summary.json exists); nothing to do")
        return 0
    train_data = ShardedDataset(args.data, "train")
    val_data = ShardedDataset(args.data, "val")
    test_data = open_test_split(args.data)
    cfg = FFNConfig(train_data.d_in, args.width, args.layers, train_data.d_out, args.activation)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    resume_cfg = {k: config[k] for k in RESUME_KEYS}
    ckpt = Checkpointer(run_dir, rank, world, resume_cfg, legacy=LEGACY_RESUME)
    log = RunLog(run_dir, active=rank == 0)
    resume, previous = _read_before_writing(ckpt, log, run_dir, device)
    if finished and resume is None:  # going on would start afresh over the finished run
        raise InputError(f"--run-dir={run_dir} holds a finished run without a checkpoint to go on "
                         "from to this launch's --max-steps/--epochs; use another --run-dir")
    pos = resume[0] if resume else None
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if finished:  # going on: the run is unfinished until its new summary is written
            (run_dir / "summary.json").unlink()
    if comm is not None:
        dist.barrier()

    log.open(pos.step if pos else None, pos.epoch if pos else None)
    sampler = start_power_sampler(args, env, run_dir)
    hosts = gather_hosts(comm)
    rank_devices = gather_rank_devices(device, env.local_rank, comm)
    started = time.time()
    try:
        log.event("run_start" if pos is None else "resume", step=pos.step if pos else 0)
        log.write_json("manifest.json", run_manifest(
            previous, config, pos.step if pos else None, model=cfg, world_size=world, hosts=hosts,
            launcher=env.launcher, distributed=comm is not None, data=args.data, started=started,
            power_source=getattr(sampler, "source", "none"), device=device,
            rank_devices=rank_devices))

        model = build_model(args.strategy, cfg, comm, ghosts=args.ghosts, seed=args.seed,
                            device=device, dtype=dtype, pp_init=args.pp_init)
        evals = Evaluations(log, args.eval_every, val_data, args.batch_size, device, dtype,
                            resumed=pos is not None)
        optimizer = make_optimizer(args.optimizer, model, lr=args.lr, momentum=args.momentum)
        if resume is not None:
            ckpt.apply(resume[1], model, optimizer)
            resume = None  # the loaded state's memory
        pos = pos or Position(0, 0, 0)
        steps_per_epoch = train_data.rows // args.batch_size  # >= 1: validate() checked
        total_steps = steps_per_epoch * args.epochs
        if args.max_steps is not None:
            total_steps = min(total_steps, args.max_steps)
        n_params = sum(local_shard(p).numel() for p in model.parameters())
        # FlopCounterMode sees DTensor ops at their global shapes, not this rank's share: no
        # per-rank count for dtensor (its plan is TP's, whose count equals costs.predict).
        # fsdp: each rank's forward + backward runs on batch/p rows of the dense model.
        local_batch = args.batch_size // world if args.strategy == "fsdp" else args.batch_size
        matmul_flops = None if args.strategy == "dtensor" else count_matmul_flops(
            model, train_data, local_batch, device, dtype, comm)
        progress = None
        if rank == 0 and not args.no_progress:
            from tqdm import tqdm

            progress = tqdm(total=total_steps, initial=pos.step, unit="step", desc=args.strategy,
                            file=sys.stderr)
        step, epoch = pos.step, pos.epoch
        step_in_epoch = pos.step_in_epoch
        last_loss = math.nan
        log.event("measure_start", epoch=epoch, step=step)
        while step < total_steps and epoch < args.epochs:
            log.event("epoch_start", epoch=epoch, step=step)
            epoch_losses = logged_losses(run_dir, epoch) if rank == 0 and step_in_epoch else []
            for x, y in iterate_batches(train_data, args.batch_size, epoch, args.seed,
                                        start_step=step_in_epoch):
                if step >= total_steps:
                    break
                if comm is not None:
                    comm.ledger.reset()
                if args.strategy == "fsdp":  # this rank's rows of the global batch
                    x, y = x[rank * local_batch:(rank + 1) * local_batch], \
                        y[rank * local_batch:(rank + 1) * local_batch]
                x, y = x.to(device, dtype), y.to(device)
                sync_device(device)
                t0 = time.perf_counter()
                out = model(x)
                loss = mse_loss(out, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last_loss = loss.item()  # synchronises
                sync_device(device)
                dt = time.perf_counter() - t0
                if args.strategy == "fsdp" and comm is not None:  # the global batch's mean loss
                    last_loss = mean_over_ranks(last_loss, device)
                evals.add_step(dt)
                step += 1
                step_in_epoch += 1
                epoch_losses.append(last_loss)
                log.metric(_metrics_row(args, comm, step, epoch, last_loss, dt))
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{last_loss:.4g}")
                elif rank == 0 and args.log_every > 0 and step % args.log_every == 0:
                    print(f"phantom-train: step {step}/{total_steps} epoch {epoch} loss "
                          f"{last_loss:.6g} step {dt * 1e3:.2f} ms", file=sys.stderr, flush=True)
                if evals.due(step) and step_in_epoch < steps_per_epoch:
                    evals.run(model, step, epoch)
                if args.checkpoint_every and step % args.checkpoint_every == 0 \
                        and step_in_epoch < steps_per_epoch and step < total_steps:
                    ckpt.save(Position(step, epoch, step_in_epoch), model, optimizer)
            epoch_done = step_in_epoch >= steps_per_epoch
            if epoch_done:
                val = evals.run(model, step, epoch)
                log.epoch({"epoch": epoch, "step": step,
                           "train_loss": repr(sum(epoch_losses) / max(len(epoch_losses), 1)),
                           "val_loss": repr(val), "t_ns": time.time_ns()})
                log.event("epoch_end", epoch=epoch, step=step)
                epoch, step_in_epoch = epoch + 1, 0
            ckpt.save(Position(step, epoch, step_in_epoch), model, optimizer)
            if not epoch_done:
                break  # --max-steps reached mid-epoch
        log.event("measure_end", epoch=epoch, step=step)
        if progress is not None:
            progress.close()
        val_loss = evals.run(model, step, epoch)
        test_loss = evals.test(model, test_data)
        peak = peak_memory_bytes(device, comm)
        total_params = count_distinct_params(model, comm)
        summary = summarise(run_dir, rank, {
            "final_train_loss": last_loss, "final_val_loss": val_loss,
            "final_test_loss": test_loss, "steps": step,
            "epochs_completed": epoch, "peak_memory_bytes": peak, "params_total": total_params,
            "params_per_rank": n_params, "world_size": world,
            "matmul_flops_per_step": matmul_flops, "strategy": args.strategy,
            "batch_size": args.batch_size, "samples": step * args.batch_size,
            "wall_time_s": time.time() - started,
        })
        log.event("run_end", epoch=epoch, step=step)
        log.write_json("summary.json", summary)
        if rank == 0:
            print(f"phantom-train: {args.strategy} p={world} n={args.width} steps={step} "
                  f"final loss {summary['final_train_loss']:.6g} val loss {val_loss:.6g} "
                  f"-> {run_dir}")  # the loss of the last step logged, also on a resume
    finally:
        log.close()
        if sampler is not None:
            sampler.stop()
    return 0


def _goes_on(args: argparse.Namespace, run_dir: Path, rank: int) -> bool:
    """Whether the finished run in ``run_dir`` has steps left under this launch's
    ``--max-steps``/``--epochs`` (then it goes on from its last checkpoint, as a resume does).

    Raises:
        InputError: its ``summary.json`` is not a run summary (naming it).
    """
    path = run_dir / "summary.json"
    fix = "restore it, or remove it to resume the run from its checkpoint"
    try:
        done = read_json(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{err}; {fix}") from None
    try:
        step, epoch = int(done["steps"]), int(done["epochs_completed"])
    except (TypeError, KeyError, ValueError):
        raise InputError(f"{path}: no integer 'steps' and 'epochs_completed'; {fix}") from None
    total = steps_per_epoch_of(args.data, args.batch_size) * args.epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    more = step < total and epoch < args.epochs
    if more and rank == 0:
        print(f"phantom-train: {run_dir} finished at step {step}; going on to step {total}")
    return more


def _read_before_writing(ckpt: Checkpointer, log: RunLog, run_dir: Path, device: torch.device,
                         ) -> tuple[tuple[Position, dict[str, Any]] | None, dict[str, Any] | None]:
    """Everything a resume reads, read and checked before anything is written: the checkpoint
    (this rank's state; :meth:`Checkpointer.resume`), and on rank 0 the run manifest and the
    logs. Returns ``(position and state, or None; the run manifest, or None)``.

    Raises:
        InputError: on every rank when any rank found a problem (printed by rank 0, or by the
            ranks whose checkpoint shard is bad); the run folder is untouched.
    """
    error: InputError | None = None
    resume = previous = None
    try:
        resume = ckpt.resume(device)
        if resume is not None and log.active:
            previous = read_run_manifest(run_dir)
            log.check(resume[0].step, resume[0].epoch)
    except CheckpointError as err:
        error = InputError(str(err), "rank" if err.own else "job")
    except (ValueError, OSError) as err:  # ResumeMismatchError, run manifest, logs
        error = InputError(str(err))
    if dist.is_initialized() and not all_ranks(error is None, device):
        raise error or InputError("", "rank")
    if error is not None:
        raise error
    return resume, previous


def _metrics_row(args: argparse.Namespace, comm: Comm | None, step: int, epoch: int,
                 loss: float, step_s: float) -> dict[str, Any]:
    """One ``metrics.csv`` row: the step's loss, time (s) split into compute and the ledger's
    communication, and throughput. dtensor and fsdp collectives are torch's own: the ledger
    does not see them, so their split is left empty."""
    led = comm.ledger if comm is not None and args.strategy not in ("dtensor", "fsdp") else None
    return {
        "step": step, "epoch": epoch, "loss": repr(loss), "step_time_s": step_s,
        "compute_time_s": step_s - led.seconds if led else (step_s if comm is None else ""),
        "comm_time_s": led.seconds if led else (0.0 if comm is None else ""),
        "comm_calls": led.total_calls if led else (0 if comm is None else ""),
        "comm_bytes": led.total_bytes if led else (0 if comm is None else ""),
        "samples_per_s": args.batch_size / step_s, "t_ns": time.time_ns(),
    }
