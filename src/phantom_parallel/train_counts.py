"""What ``phantom-train`` counts about its model and ranks for ``summary.json``: matmul FLOPs
per step, distinct parameters, peak memory, and a loss averaged over ranks."""

from __future__ import annotations

import resource

import torch
import torch.distributed as dist

from phantom_parallel.comm import Comm
from phantom_parallel.data import ShardedDataset
from phantom_parallel.layers import PhantomLinear, RowParallelLinear
from phantom_parallel.train_setup import mse_loss


def count_matmul_flops(model: torch.nn.Module, data: ShardedDataset, batch_size: int,
                       device: torch.device, dtype: torch.dtype, comm: Comm | None = None) -> int:
    """Matmul FLOPs of one forward + backward of the busiest rank (``FlopCounterMode`` on each
    rank, the maximum over ranks with ``comm``; every rank of a strategy counts the same),
    measured on the first rows of the data before training; the gradients are discarded, so
    training is unaffected."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y = data.get_batch(list(range(batch_size)))
    with FlopCounterMode(display=False) as counter:
        mse_loss(model(x.to(device, dtype)), y.to(device)).backward()
    for param in model.parameters():
        param.grad = None
    return _max_over_ranks(counter.get_total_flops(), device, comm)


def _max_over_ranks(value: float, device: torch.device, comm: Comm | None) -> int:
    """The maximum of ``value`` over all ranks (``comm`` None: this rank's). Reduced on
    ``device`` (an NCCL-only process group reduces no host tensors); not training traffic:
    not in the ledger."""
    t = torch.tensor([value], dtype=torch.float64, device=device)
    if comm is not None:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def local_shard(param: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a parameter (a DTensor's local tensor, else the tensor itself)."""
    return param.to_local() if hasattr(param, "to_local") else param


def count_distinct_params(model: torch.nn.Module, comm: Comm | None) -> int:
    """Parameters of the whole model, each counted once: shards summed over ranks, tensors
    replicated on every rank (row-parallel biases) counted once, a phantom layer's held zeros
    (D_rr) not counted; a DTensor knows its global size."""
    if any(hasattr(p, "to_local") for p in model.parameters()):
        return sum(p.numel() for p in model.parameters())  # DTensor: global numel
    local = 0
    for module in model.modules():
        local -= module.held_zero if isinstance(module, PhantomLinear) else 0
        replicated = isinstance(module, RowParallelLinear)
        for name, param in module.named_parameters(recurse=False):
            if not (replicated and name == "bias") or comm is None or comm.rank == 0:
                local += param.numel()
    if comm is None:
        return local
    total = torch.tensor([local], dtype=torch.float64)
    dist.all_reduce(total)
    return int(total.item())


def peak_memory_bytes(device: torch.device, comm: Comm | None) -> int:
    """Peak memory of the busiest rank, bytes: accelerator bytes allocated, or host max RSS
    on CPU."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return _max_over_ranks(peak, device, comm)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """Mean of a float over all ranks (float64; not training traffic: not in the ledger)."""
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()
