"""Counted collectives and matmul FLOPs of one real training step equal the cost model exactly."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from phantom_parallel.comm import Comm
from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.models import FFNConfig, build_model
from tests.distributed_harness import run_on_ranks


def _one_step(comm: Comm | None, strategy: str, cfg: FFNConfig, batch: int, ghosts: int | None,
              dtype: torch.dtype) -> dict[str, object]:
    """Forward + backward of one batch; returns matmul FLOPs and the ledger of this rank."""
    model = build_model(strategy, cfg, comm, ghosts=ghosts, seed=1, dtype=dtype)
    x = torch.randn(batch, cfg.d_in, dtype=dtype)
    y = torch.randn(batch, cfg.d_out, dtype=dtype)
    if comm is not None:
        comm.ledger.reset()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.mse_loss(model(x), y).backward()
    ledger = comm.ledger if comm is not None else None
    return {
        "flops": counter.get_total_flops(),
        "calls": dict(ledger.calls) if ledger else {},
        "bytes": dict(ledger.payload_bytes) if ledger else {},
    }


CASES = [  # strategy, p, width, layers, ghosts, dtype
    ("tp", 2, 16, 2, None, torch.float32),
    ("tp", 2, 16, 3, None, torch.float64),
    ("tp", 4, 16, 3, None, torch.float32),
    ("pp", 2, 16, 2, 3, torch.float32),
    ("pp", 4, 16, 3, 2, torch.float64),
    ("pp", 1, 16, 2, 4, torch.float32),
]


@pytest.mark.parametrize(("strategy", "p", "width", "layers", "ghosts", "dtype"), CASES)
def test_counted_bytes_and_flops_equal_the_cost_model(strategy, p, width, layers, ghosts, dtype):
    cfg = FFNConfig(d_in=6, width=width, layers=layers, d_out=3)
    batch = 7
    results = run_on_ranks(_one_step, p, strategy, cfg, batch, ghosts, dtype)
    elem = torch.tensor([], dtype=dtype).element_size()
    shape = FFNShape(d_in=6, width=width, layers=layers, d_out=3, batch=batch, p=p,
                     ghosts=ghosts or 0, elem_bytes=elem)
    cost = predict(strategy, shape)
    assert sum(got["flops"] for got in results) == cost.matmul_flops_total
    for rank, got in enumerate(results):  # every rank does the same work
        assert got["flops"] == cost.matmul_flops, f"rank {rank} matmul FLOPs"
        assert got["calls"] == {op: n for op, n in cost.comm_calls.items() if n}, f"rank {rank} calls"
        assert sum(got["bytes"].values()) == cost.payload_bytes, f"rank {rank} payload bytes"
        by_op: dict[str, int] = {}
        for call in cost.calls:
            by_op[call.op] = by_op.get(call.op, 0) + call.payload_bytes
        assert got["bytes"] == by_op, f"rank {rank} bytes per op"


def test_serial_flops_equal_the_cost_model() -> None:
    cfg = FFNConfig(d_in=6, width=16, layers=3, d_out=3)
    got = _one_step(None, "serial", cfg, 7, None, torch.float32)
    assert got["flops"] == predict("serial", FFNShape(6, 16, 3, 3, 7)).matmul_flops


def test_pp_moves_k_over_m_of_tp_forward_traffic_per_hidden_layer() -> None:
    """Measured forward payload of the hidden layers: PP receives (p-1)Bk per layer,
    TP about (p-1)Bn/p, so the ratio is k/m (here L is even: TP's all-reduce every 2 layers)."""
    p, width, layers, ghosts, batch = 4, 32, 2, 2, 5
    cfg = FFNConfig(d_in=6, width=width, layers=layers, d_out=1)
    tp = run_on_ranks(_one_step, p, "tp", cfg, batch, None, torch.float32)[0]
    pp = run_on_ranks(_one_step, p, "pp", cfg, batch, ghosts, torch.float32)[0]
    # forward-only hidden-layer payloads: TP one all-reduce of B x n per two layers (minus the
    # output layer's B x d_out), PP one all-gather of B x k per layer
    tp_hidden_fwd = (tp["bytes"]["all_reduce"] - batch * 1 * 4) / 2  # the other half is backward
    pp_hidden_fwd = pp["bytes"]["all_gather"]
    assert pp["bytes"]["all_gather"] == layers * batch * ghosts * 4
    m = width // p
    # received per rank under a ring: TP 2(p-1)/p * (B n 4) per 2 layers; PP (p-1) * (B k 4) per layer
    tp_received = 2 * (p - 1) / p * tp_hidden_fwd / layers
    pp_received = (p - 1) * pp_hidden_fwd / layers
    assert pp_received / tp_received == pytest.approx(ghosts / m)
