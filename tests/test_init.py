"""Phantom-layer initialisation: the pre-activation variance at init, measured on the
single-process reference (float64, random inputs), against the dense layer's."""

from __future__ import annotations

import pytest
import torch

from phantom_parallel.models import FFNConfig, build_model
from phantom_parallel.param_init import PP_INITS, dense_init, phantom_bounds
from phantom_parallel.reference import PhantomReference

F64 = torch.float64
N, K, B = 8192, 16, 64  # k <= m = n/p for every p below (m = 32 at p = 256)


@pytest.fixture(scope="module")
def h() -> torch.Tensor:
    """Hidden activations as a trained-from-scratch FFN sees them: GELU of N(0, 1) (B x n)."""
    gen = torch.Generator().manual_seed(5)
    return torch.nn.functional.gelu(torch.randn(B, N, generator=gen, dtype=F64))


@pytest.fixture(scope="module")
def dense_var(h: torch.Tensor) -> float:
    w, b = dense_init(0, "hidden.0", N, N, F64)
    return float((h @ w.t() + b).var())


def _pp_parts(h: torch.Tensor, p: int, rule: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cfg = FFNConfig(d_in=1, width=N, layers=1, d_out=1)
    ref = PhantomReference(cfg, p, K, dtype=F64, seed=0, pp_init=rule)
    with torch.no_grad():
        return ref.preactivation_parts(0, h)


@pytest.mark.parametrize("p", [2, 8, 32, 256])
def test_variance_rule_matches_the_dense_preactivation_variance(h, dense_var, p: int) -> None:
    local, cross, bias = _pp_parts(h, p, "variance")
    ratio = float((local + cross + bias).var()) / dense_var
    assert ratio == pytest.approx(1.0, abs=0.10), ratio
    # the other ranks carry (p-1)/p of the signal, as in the dense layer
    share = float(cross.pow(2).mean() / (local.pow(2).mean() + cross.pow(2).mean()))
    assert share == pytest.approx((p - 1) / p, abs=0.05), share


@pytest.mark.parametrize("p", [32, 256])
def test_fan_in_rule_shrinks_the_variance_as_the_issue_says(h, dense_var, p: int) -> None:
    """Old rule: relative variance (m + (p-1)k/3) / (m + (p-1)k): 0.56 at p = 32, 0.34 at 256."""
    local, cross, bias = _pp_parts(h, p, "fan-in")
    ratio = float((local + cross + bias).var()) / dense_var
    m = N // p
    predicted = (m + (p - 1) * K / 3) / (m + (p - 1) * K)
    assert ratio == pytest.approx(predicted, rel=0.10), (ratio, predicted)
    assert ratio < 0.7  # outside the 10 % band the new rule meets


def test_p1_is_dense_under_both_rules() -> None:
    cfg = FFNConfig(d_in=3, width=8, layers=2, d_out=2)
    dense = build_model("serial", cfg, None, seed=4, dtype=F64)
    for rule in PP_INITS:
        pp = build_model("pp", cfg, None, ghosts=2, seed=4, dtype=F64, pp_init=rule)
        for (name, a), (_, b) in zip(pp.named_parameters(), dense.named_parameters(), strict=True):
            assert torch.equal(a, b), (rule, name)


def test_rules_differ_by_one_scale_per_tensor_and_bad_rule_is_named() -> None:
    from phantom_parallel.param_init import phantom_init

    new = phantom_init(1, "hidden.0", 64, 4, 4, 2, F64, "variance")
    old = phantom_init(1, "hidden.0", 64, 4, 4, 2, F64, "fan-in")
    a_new, a_old = phantom_bounds(64, 4, 4, "variance"), phantom_bounds(64, 4, 4, "fan-in")
    for key in new:
        torch.testing.assert_close(new[key] / a_new[key], old[key] / a_old[key])
    with pytest.raises(ValueError, match="pp_init='magic'"):
        build_model("pp", FFNConfig(3, 8, 1, 2), None, ghosts=2, pp_init="magic")
