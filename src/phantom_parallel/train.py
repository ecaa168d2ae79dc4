"""``phantom-train``: one FFN training run (serial, tp, pp, dtensor or fsdp) into one run folder.

Launch with ``torchrun --standalone --nproc-per-node P -m phantom_parallel.train ...`` locally
or ``srun -n P python -m phantom_parallel.train ...`` under SLURM (ranks and the rendezvous
address are read from either environment). Rerunning the same command resumes from the run
folder's last checkpoint and ends with exactly the weights and losses of an uninterrupted run;
a finished run (``summary.json`` present) is not redone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from phantom_parallel import __version__, cli, constants
from phantom_parallel.checkpoint import Checkpointer, Position
from phantom_parallel.comm import TIMINGS, Comm
from phantom_parallel.data import ShardedDataset, iterate_batches
from phantom_parallel.distributed import (
    LaunchEnv,
    init_distributed,
    read_launch_env,
)
from phantom_parallel.energy.devices import device_identity, rank_devices_manifest
from phantom_parallel.energy.sources import POWER_SOURCES
from phantom_parallel.evals import (
    Evaluations,
    check_eval_every,
    evaluate,  # noqa: F401  (re-exported: phantom_parallel.train.evaluate)
    open_test_split,
    steps_per_epoch_of,
)
from phantom_parallel.layers import RowParallelLinear
from phantom_parallel.models import (
    ACTIVATIONS,
    PP_INITS,
    STRATEGIES,
    FFNConfig,
    build_model,
    validate_layout,
)
from phantom_parallel.runlog import RunLog

DTYPES = {name: getattr(torch, name) for name in constants.DTYPES}
"""``--dtype`` name -> torch dtype (the names are :data:`phantom_parallel.constants.DTYPES`)."""
# Settings that must not change when a run resumes (names as in the CLI).
RESUME_KEYS = ("strategy", "width", "layers", "ghosts", "batch_size", "optimizer", "lr", "seed",
               "dtype", "activation", "data", "momentum", "pp_init", "eval_every")
# What a key meant in checkpoints written before it was recorded (they resume as such).
LEGACY_RESUME = {"pp_init": "fan-in", "eval_every": 0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("phantom-train", __doc__)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (phantom-data generate)")
    p.add_argument("--run-dir", type=Path, required=True, help="run folder (created; resumed if present)")
    p.add_argument("--strategy", choices=STRATEGIES, required=True)
    p.add_argument("--width", type=int, required=True, help="hidden width n (divisible by ranks p)")
    p.add_argument("--layers", type=int, default=2, help="number L of hidden n x n layers")
    p.add_argument("--ghosts", type=int, default=None, help="ghost neurons k per rank (pp; 1 <= k <= n/p)")
    p.add_argument("--pp-init", choices=PP_INITS, default=PP_INITS[0],
                   help="phantom-layer init (pp): variance-preserving (default) or the old fan-in rule")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="gelu", help="hidden activation")
    p.add_argument("--batch-size", type=int, default=64, help="samples per optimizer step (global)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training split")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam", help="optimizer")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--seed", type=int, default=0, help="init, data order")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameters and activations")
    p.add_argument("--device", default="cpu", help="cpu or cuda (ROCm GPUs are cuda in torch)")
    p.add_argument("--backend", default="auto", help="auto, gloo or nccl (RCCL on ROCm)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads per rank")
    p.add_argument("--eval-every", type=int, default=0,
                   help="validate every N steps into evals.csv (0: only at epoch ends; "
                        "1 <= N <= steps per epoch)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also checkpoint every N steps (0: only at the end of each epoch)")
    p.add_argument("--power-source", choices=POWER_SOURCES, default="auto", help="power sensor to sample")
    p.add_argument("--power-interval-ms", type=float, default=100.0, help="sampler poll interval (ms)")
    p.add_argument("--comm-timing", choices=TIMINGS, default="events",
                   help="how GPU collectives are timed: device events (default), device-sync "
                        "(diagnostic: serialises the step) or off (counts only)")
    p.add_argument("--timeout-s", type=float, default=300.0,
                   help="collective timeout: a rank waiting longer on a dead peer fails")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on rank 0 (a log line every --log-every steps instead)")
    p.add_argument("--log-every", type=int, default=100,
                   help="with --no-progress: rank 0 logs step, loss and step time every N steps")
    return p.parse_args(argv)


def validate(args: argparse.Namespace, world_size: int) -> None:
    """Reject bad input before any work starts, naming the flag and value."""
    def bad(msg: str) -> None:
        raise SystemExit(f"phantom-train: error: {msg}")

    for key in ("width", "batch_size", "epochs"):
        if getattr(args, key) < 1:
            bad(f"--{key.replace('_', '-')}={getattr(args, key)} must be >= 1")
    if args.layers < 0:
        bad(f"--layers={args.layers} must be >= 0")
    if args.log_every < 0:
        bad(f"--log-every={args.log_every} must be >= 0 (0: no log lines)")
    if args.max_steps is not None and args.max_steps < 1:
        bad(f"--max-steps={args.max_steps} must be >= 1")
    if args.strategy == "pp" and args.ghosts is None:
        bad("--strategy=pp needs --ghosts k")
    try:
        validate_layout(args.strategy, args.width, world_size, args.ghosts)
    except ValueError as err:
        bad(cli.layout_error(err))
    if (msg := cli.device_error(args.device, args.backend)) is not None:
        bad(msg)
    if not (args.data / "manifest.json").exists():
        bad(f"--data={args.data}: no manifest.json there (generate it with phantom-data generate)")
    rows = json.loads((args.data / "manifest.json").read_text())["splits"]["train"]["rows"]
    if args.batch_size > rows:
        bad(f"--batch-size={args.batch_size} exceeds the {rows} training rows of --data={args.data}")
    if args.strategy == "fsdp" and args.batch_size % world_size:
        bad(f"--batch-size={args.batch_size} is not divisible by the number of ranks p={world_size} "
            "(fsdp splits each batch over the ranks)")
    spe = steps_per_epoch_of(args.data, args.batch_size)
    if (msg := check_eval_every(args.eval_every, spe)) is not None:
        bad(msg)
    _refuse_a_different_finished_run(args, world_size, bad)


def _refuse_a_different_finished_run(args: argparse.Namespace, world_size: int, bad: Any) -> None:
    """A finished run folder (summary.json) is not redone; relaunching it with other settings
    is an error naming the differing keys (rather than "nothing to do")."""
    manifest = args.run_dir / "manifest.json"
    if not (args.run_dir / "summary.json").exists() or not manifest.exists():
        return
    done = json.loads(manifest.read_text())
    now = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    differ = [f"{k}={done['config'].get(k)!r} (this launch: {now[k]!r})"
              for k in RESUME_KEYS if done["config"].get(k) != now[k]]
    if done.get("world_size") != world_size:
        differ.append(f"world size {done.get('world_size')} (this launch: {world_size})")
    if differ:
        bad(f"--run-dir={args.run_dir} holds a finished run with other settings: "
            f"{', '.join(differ)}; use another --run-dir")


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except OSError:
        return None


def _gather_hosts(comm: Comm | None) -> list[str]:
    host = socket.gethostname()
    if comm is None:
        return [host]
    hosts: list[Any] = [None] * comm.world_size
    dist.all_gather_object(hosts, host)
    return hosts


def _peak_memory_bytes(device: torch.device, comm: Comm | None) -> int:
    """Peak memory of the busiest rank: accelerator bytes allocated, or host max RSS on CPU."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    t = torch.tensor([peak], dtype=torch.float64)
    if comm is not None:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM or cgroup cpuset counts)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.float(), y.float())


def count_matmul_flops(model: torch.nn.Module, data: ShardedDataset, batch_size: int,
                       device: torch.device, dtype: torch.dtype) -> int:
    """Matmul FLOPs of one forward + backward on this rank (``FlopCounterMode``), measured on
    the first rows of the data before training; the gradients are discarded, so training is
    unaffected."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y = data.get_batch(list(range(batch_size)))
    with FlopCounterMode(display=False) as counter:
        _loss(model(x.to(device, dtype)), y.to(device)).backward()
    for param in model.parameters():
        param.grad = None
    return int(counter.get_total_flops())


def _local(param: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a parameter (a DTensor's local tensor, else the tensor itself)."""
    return param.to_local() if hasattr(param, "to_local") else param


def count_distinct_params(model: torch.nn.Module, comm: Comm | None) -> int:
    """Parameters of the whole model, each counted once: shards summed over ranks, tensors
    replicated on every rank (row-parallel biases) counted once; a DTensor knows its global
    size."""
    if any(hasattr(p, "to_local") for p in model.parameters()):
        return sum(p.numel() for p in model.parameters())  # DTensor: global numel
    local = 0
    for module in model.modules():
        replicated = isinstance(module, RowParallelLinear)
        for name, param in module.named_parameters(recurse=False):
            if not (replicated and name == "bias") or comm is None or comm.rank == 0:
                local += param.numel()
    if comm is None:
        return local
    total = torch.tensor([local], dtype=torch.float64)
    dist.all_reduce(total)
    return int(total.item())


def make_optimizer(name: str, model: torch.nn.Module, *, lr: float, momentum: float = 0.9,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum or Adam. On a GPU, Adam over plain tensors is torch's fused
    implementation (one kernel for all parameters: a rank's step at scale is launch-bound);
    elsewhere torch's default. ``capturable``: Adam state on the device (CUDA graphs)."""
    params = list(model.parameters())
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    fused = params[0].is_cuda and not any(hasattr(p, "to_local") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None, capturable=capturable)


def _start_power(args: argparse.Namespace, env: LaunchEnv, run_dir: Path):
    if env.local_rank != 0 or args.power_source == "none":
        return None
    from phantom_parallel.energy.sampler import start_sampler

    return start_sampler(source=args.power_source, out_dir=run_dir / "power",
                         interval_s=args.power_interval_ms / 1000.0)


def run(args: argparse.Namespace, env: LaunchEnv, comm: Comm | None) -> int:
    rank, world = env.rank, env.world_size
    device = torch.device(args.device if args.device != "cuda" else f"cuda:{torch.cuda.current_device()}")
    dtype = DTYPES[args.dtype]
    run_dir: Path = args.run_dir
    if (run_dir / "summary.json").exists():
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
    pos = ckpt.check_compatible()  # raises before anything is written
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    if comm is not None:
        dist.barrier()

    log = RunLog(run_dir, active=rank == 0)
    log.open(pos.step if pos else None, pos.epoch if pos else None)
    sampler = _start_power(args, env, run_dir)
    hosts = _gather_hosts(comm)
    rank_devices: list[Any] = [device_identity(device, local_rank=env.local_rank)]
    if comm is not None:
        rank_devices = [None] * world
        dist.all_gather_object(rank_devices, device_identity(device, local_rank=env.local_rank))
    started = time.time()
    try:
        log.event("run_start" if pos is None else "resume", step=pos.step if pos else 0)
        manifest_path = run_dir / "manifest.json"
        if pos is None or not manifest_path.exists():
            manifest: dict[str, Any] = {"config": config, "resumes": []}
        else:
            manifest = json.loads(manifest_path.read_text())
            manifest["resumes"].append({"step": pos.step, "time": time.time()})
        manifest.update({
            "model": cfg.__dict__, "world_size": world, "hosts": sorted(set(hosts)),
            "ranks_per_host": {h: hosts.count(h) for h in sorted(set(hosts))},
            "launcher": env.launcher, "git_revision": git_revision(), "phantom_parallel": __version__,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "backend": dist.get_backend() if comm else None,
                         "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None)},
            "data_manifest": str(args.data / "manifest.json"), "started_at": started,
            "power_source": getattr(sampler, "source", "none"),
            "cpu_name": cpu_model(),
            "cpu_count": usable_cores(),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            **rank_devices_manifest(rank_devices),
        })
        log.write_json("manifest.json", manifest)

        model = build_model(args.strategy, cfg, comm, ghosts=args.ghosts, seed=args.seed,
                            device=device, dtype=dtype, pp_init=args.pp_init)
        evals = Evaluations(log, args.eval_every, val_data, args.batch_size, device, dtype,
                            resumed=pos is not None)
        optimizer = make_optimizer(args.optimizer, model, lr=args.lr, momentum=args.momentum)
        if pos is not None:
            ckpt.load(pos, model, optimizer)
        pos = pos or Position(0, 0, 0)
        steps_per_epoch = train_data.rows // args.batch_size
        if steps_per_epoch < 1:
            raise SystemExit(f"phantom-train: error: --batch-size={args.batch_size} exceeds the "
                             f"{train_data.rows} training rows")
        total_steps = steps_per_epoch * args.epochs
        if args.max_steps is not None:
            total_steps = min(total_steps, args.max_steps)
        n_params = sum(_local(p).numel() for p in model.parameters())
        # FlopCounterMode sees DTensor ops at their global shapes, not this rank's share: no
        # per-rank count for dtensor (its plan is TP's, whose count equals costs.predict).
        # fsdp: each rank's forward + backward runs on batch/p rows of the dense model.
        local_batch = args.batch_size // world if args.strategy == "fsdp" else args.batch_size
        matmul_flops = None if args.strategy == "dtensor" else count_matmul_flops(
            model, train_data, local_batch, device, dtype)
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
            epoch_losses = _logged_losses(run_dir, epoch) if rank == 0 and step_in_epoch else []
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
                _sync(device)
                t0 = time.perf_counter()
                out = model(x)
                loss = _loss(out, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last_loss = loss.item()  # synchronises
                _sync(device)
                dt = time.perf_counter() - t0
                if args.strategy == "fsdp" and comm is not None:  # the global batch's mean loss
                    last_loss = _mean_over_ranks(last_loss, device)
                evals.add_step(dt)
                step += 1
                step_in_epoch += 1
                epoch_losses.append(last_loss)
                # dtensor and fsdp collectives are torch's own: the ledger does not see them
                led = comm.ledger if comm is not None and args.strategy not in ("dtensor", "fsdp") \
                    else None
                log.metric({
                    "step": step, "epoch": epoch, "loss": repr(last_loss), "step_time_s": dt,
                    "compute_time_s": dt - led.seconds if led else (dt if comm is None else ""),
                    "comm_time_s": led.seconds if led else (0.0 if comm is None else ""),
                    "comm_calls": led.total_calls if led else (0 if comm is None else ""),
                    "comm_bytes": led.total_bytes if led else (0 if comm is None else ""),
                    "samples_per_s": args.batch_size / dt, "t_ns": time.time_ns(),
                })
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
        peak = _peak_memory_bytes(device, comm)
        total_params = count_distinct_params(model, comm)
        summary = _summarise(run_dir, rank, {
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
                  f"final loss {last_loss:.6g} val loss {val_loss:.6g} -> {run_dir}")
    finally:
        log.close()
        if sampler is not None:
            sampler.stop()
    return 0


def _mean_over_ranks(value: float, device: torch.device) -> float:
    """Mean of a float over all ranks (float64; not training traffic: not in the ledger)."""
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _logged_losses(run_dir: Path, epoch: int) -> list[float]:
    """Losses already logged for ``epoch`` (a resumed epoch's mean covers all its steps)."""
    import pandas as pd

    m = pd.read_csv(run_dir / "metrics.csv", dtype={"loss": str})
    return [float(v) for v in m.loc[m["epoch"] == epoch, "loss"]]


def _summarise(run_dir: Path, rank: int, summary: dict[str, Any]) -> dict[str, Any]:
    """Add means over the (complete) metrics.csv to the summary (rank 0 only)."""
    if rank != 0:
        return summary
    import pandas as pd

    m = pd.read_csv(run_dir / "metrics.csv", dtype={"loss": str})
    if len(m):
        summary["final_train_loss"] = float(m["loss"].iloc[-1])
    for col in ("step_time_s", "compute_time_s", "comm_time_s", "comm_bytes", "comm_calls",
                "samples_per_s"):
        vals = pd.to_numeric(m[col], errors="coerce")
        summary[f"mean_{col}"] = None if vals.isna().all() else float(vals.mean())
    summary["comm_bytes_per_step"] = summary.pop("mean_comm_bytes")
    summary["comm_calls_per_step"] = summary.pop("mean_comm_calls")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = read_launch_env()
    validate(args, env.world_size)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    comm = init_distributed(env, args.backend, args.device, args.timeout_s, args.comm_timing)
    try:
        return run(args, env, comm)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
