"""What one training step is made of in ``phantom-train``: the optimizer, the loss, the device
sync around a timed step, and the power sampler that runs beside the training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from phantom_parallel.distributed import LaunchEnv


def make_optimizer(name: str, model: torch.nn.Module, *, lr: float, momentum: float = 0.9,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum or Adam. Adam over plain tensors is torch's fused implementation on
    every device (one operator for all parameters: a rank's step at scale is launch-bound,
    and CPU and GPU steps dispatch the same operators); over DTensor parameters torch's
    default. ``capturable``: Adam state on the device (CUDA graphs)."""
    params = list(model.parameters())
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    fused = not any(hasattr(p, "to_local") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None, capturable=capturable)


def mse_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss: mean squared error of ``out`` against ``y`` (both ``(B, d_out)``),
    computed in float32 whatever the model's dtype."""
    return F.mse_loss(out.float(), y.float())


def sync_device(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on CPU), so a host clock times it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def start_power_sampler(args: argparse.Namespace, env: LaunchEnv, run_dir: Path) -> Any:
    """The power sampler writing into ``run_dir/power`` (one per host: local rank 0 only), or
    None on the other ranks and with ``--power-source none``."""
    if env.local_rank != 0 or args.power_source == "none":
        return None
    from phantom_parallel.energy.sampler import start_sampler

    return start_sampler(source=args.power_source, out_dir=run_dir / "power",
                         interval_s=args.power_interval_ms / 1000.0)
