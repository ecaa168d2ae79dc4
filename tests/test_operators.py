"""Parallel operators against single-process references (float64), and gradcheck on gloo."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from phantom_parallel.comm import Comm
from phantom_parallel.layers import PhantomLinear
from phantom_parallel.mappings import (
    copy_to_region,
    reduce_from_region,
    scatter_to_region,
)
from phantom_parallel.models import FFN, FFNConfig, build_model
from phantom_parallel.reference import gather_reference
from tests.distributed_harness import run_on_ranks

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _batch(cfg: FFNConfig, batch: int = 5, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.d_in, generator=gen, dtype=F64)
    y = torch.randn(batch, cfg.d_out, generator=gen, dtype=F64)
    return x, y


def _loss_and_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    out = model(x)
    loss = torch.nn.functional.mse_loss(out, y)
    loss.backward()
    return out.detach().clone(), loss.detach()


def _compare_to_reference(comm: Comm, strategy: str, cfg: FFNConfig, ghosts: int | None) -> str:
    """Run the sharded model and its gathered reference on the same batch; compare outputs,
    losses and every gradient (gathered the same way as the weights)."""
    model = build_model(strategy, cfg, comm, ghosts=ghosts, seed=7, dtype=F64)
    ref = gather_reference(model, strategy, comm, ghosts=ghosts)
    x, y = _batch(cfg)
    out, loss = _loss_and_grads(model, x, y)
    ref_out, ref_loss = _loss_and_grads(ref, x, y)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(loss, ref_loss, **TOL)
    # gradients: load the sharded model's grads in place of its weights and gather them
    with torch.no_grad():
        for p_ in model.parameters():
            p_.copy_(p_.grad)
    grads = gather_reference(model, strategy, comm, ghosts=ghosts)
    ref_grads = dict(ref.named_parameters())
    for name, g in grads.named_parameters():
        torch.testing.assert_close(g, ref_grads[name].grad, **TOL, msg=f"grad of {name}")
    return "ok"


@pytest.mark.parametrize("p", [2, 4])
@pytest.mark.parametrize("layers", [2, 3])
def test_tp_matches_dense(p: int, layers: int) -> None:
    cfg = FFNConfig(d_in=6, width=8, layers=layers, d_out=3)
    assert run_on_ranks(_compare_to_reference, p, "tp", cfg, None) == ["ok"] * p


@pytest.mark.parametrize("layers", [2, 3])
def test_dtensor_matches_dense(layers: int) -> None:
    cfg = FFNConfig(d_in=6, width=8, layers=layers, d_out=3)
    assert run_on_ranks(_compare_to_reference, 2, "dtensor", cfg, None) == ["ok"] * 2


def test_fsdp_matches_dense() -> None:
    """fully_shard over 2 ranks, the same batch on both: the dense outputs and gradients."""
    cfg = FFNConfig(d_in=6, width=8, layers=2, d_out=3)
    assert run_on_ranks(_compare_to_reference, 2, "fsdp", cfg, None) == ["ok"] * 2


@pytest.mark.parametrize(("p", "ghosts"), [(2, 1), (2, 3), (4, 2)])
def test_pp_matches_block_reference(p: int, ghosts: int) -> None:
    cfg = FFNConfig(d_in=6, width=12, layers=3, d_out=3, activation="tanh")
    assert run_on_ranks(_compare_to_reference, p, "pp", cfg, ghosts) == ["ok"] * p


def _pp_p1_equals_serial(comm: Comm) -> str:
    cfg = FFNConfig(d_in=5, width=8, layers=2, d_out=2)
    pp = build_model("pp", cfg, comm, ghosts=3, seed=11, dtype=F64)
    dense = build_model("serial", cfg, None, seed=11, dtype=F64)
    assert sum(p_.numel() for p_ in pp.parameters()) == sum(p_.numel() for p_ in dense.parameters())
    x, y = _batch(cfg)
    out, _ = _loss_and_grads(pp, x, y)
    ref, _ = _loss_and_grads(dense, x, y)
    torch.testing.assert_close(out, ref, **TOL)
    for (name, a), (_, b) in zip(pp.named_parameters(), dense.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, **TOL, msg=name)
    return "ok"


def test_pp_with_one_rank_is_dense() -> None:
    assert run_on_ranks(_pp_p1_equals_serial, 1) == ["ok"]


def _pp_full_ghosts_equals_dense(comm: Comm) -> str:
    """k = m, C_r = I, D_rs = W_rs (the dense off-diagonal blocks): PP computes the dense FFN."""
    p, r = comm.world_size, comm.rank
    cfg = FFNConfig(d_in=5, width=8, layers=3, d_out=2)
    m = cfg.width // p
    dense = build_model("serial", cfg, None, seed=3, dtype=F64)
    pp = build_model("pp", cfg, comm, ghosts=m, seed=99, dtype=F64)
    with torch.no_grad():
        for name in ("input", "output"):
            src, dst = dense.get_submodule(name), pp.get_submodule(name)
            if name == "input":
                dst.weight.copy_(src.weight.chunk(p, 0)[r])
                dst.bias.copy_(src.bias.chunk(p, 0)[r])
            else:
                dst.weight.copy_(src.weight.chunk(p, 1)[r])
                dst.bias.copy_(src.bias)
        for i in range(cfg.layers):
            w, b = dense.hidden[i].weight, dense.hidden[i].bias
            layer: PhantomLinear = pp.hidden[i]
            rows = w[r * m : (r + 1) * m]
            blocks = rows.chunk(p, dim=1)
            layer.weight.copy_(blocks[r])
            layer.compress.copy_(torch.eye(m, dtype=F64))
            # D_r: the peers' blocks, and with p > 2 the zero block D_rr in rank r's columns
            layer.decompress.copy_(torch.cat([torch.zeros_like(blocks[s]) if s == r else blocks[s]
                                              for s in range(p) if s != r or layer.reads_all], 1))
            layer.bias.copy_(b[r * m : (r + 1) * m])
    x, y = _batch(cfg)
    out, _ = _loss_and_grads(pp, x, y)
    ref, _ = _loss_and_grads(dense, x, y)
    torch.testing.assert_close(out, ref, **TOL)
    return "ok"


@pytest.mark.parametrize("p", [2, 4])
def test_pp_with_full_ghosts_is_dense(p: int) -> None:
    assert run_on_ranks(_pp_full_ghosts_equals_dense, p) == ["ok"] * p


def test_pp_has_fewer_parameters_than_dense() -> None:
    cfg = FFNConfig(d_in=5, width=16, layers=2, d_out=2)
    p = 4
    per_rank = run_on_ranks(_count_pp_params, p, cfg, 1)
    distinct = sum(per_rank) - (p - 1) * cfg.d_out  # the output bias is replicated on each rank
    assert distinct < sum(p_.numel() for p_ in FFN(cfg).parameters())


def _count_pp_params(comm: Comm, cfg: FFNConfig, ghosts: int) -> int:
    return sum(p_.numel() for p_ in build_model("pp", cfg, comm, ghosts=ghosts).parameters())


# ----------------------------------------------------------------------------- gradcheck
def _gradcheck_functions(comm: Comm) -> str:
    """gradcheck each Function inside a composite whose input is replicated on every rank, so
    the composite's Jacobian is the true global one (all ranks perturb the same input in
    lockstep). Rank-specific weights between the operators make a wrong adjoint visible."""
    p, r = comm.world_size, comm.rank
    gen = torch.Generator().manual_seed(0)  # same on all ranks: replicated inputs
    x = torch.randn(3, 4 * p, generator=gen, dtype=F64, requires_grad=True)
    w = torch.randn(p, 3, 4 * p, generator=gen, dtype=F64)[r]  # rank-specific
    a = torch.randn(p, 4, 5, generator=gen, dtype=F64)[r]
    layer = PhantomLinear(4 * p, 2, comm, dtype=F64)
    with torch.no_grad():
        for param in layer.parameters():
            param.copy_(torch.randn(p, *param.shape, generator=gen, dtype=F64)[r])

    def copy_then_reduce(t: torch.Tensor) -> torch.Tensor:
        return reduce_from_region(copy_to_region(t, comm) * w, comm)

    def scatter_then_reduce(t: torch.Tensor) -> torch.Tensor:
        return reduce_from_region(scatter_to_region(t, comm) @ a, comm)

    def phantom(t: torch.Tensor) -> torch.Tensor:  # ghosts' all-gather, reduce-scatter backward
        return reduce_from_region(layer(scatter_to_region(t, comm)) @ a, comm)

    for fn in (copy_then_reduce, scatter_then_reduce, phantom):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-8), fn.__name__
    return "ok"


@pytest.mark.parametrize("p", [2, 4])
def test_gradcheck_custom_functions(p: int) -> None:
    assert run_on_ranks(_gradcheck_functions, p) == ["ok"] * p


def _wrong_adjoint_is_caught(comm: Comm) -> bool:
    """The gradcheck composite must fail for an operator with a wrong backward."""

    class BadCopy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            return g  # missing the all-reduce

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, generator=gen, dtype=F64, requires_grad=True)
    w = torch.randn(comm.world_size, 2, 3, generator=gen, dtype=F64)[comm.rank]
    try:
        torch.autograd.gradcheck(lambda t: reduce_from_region(BadCopy.apply(t) * w, comm), (x,),
                                 eps=1e-6, atol=1e-8)
    except GradcheckError:
        return True
    return False


def test_gradcheck_composite_detects_a_wrong_adjoint() -> None:
    assert run_on_ranks(_wrong_adjoint_is_caught, 2) == [True, True]
