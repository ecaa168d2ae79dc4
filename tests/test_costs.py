"""Tests of the closed-form cost model (:mod:`phantom_parallel.costs`).

The reference is a single-process emulation of one rank's local computation, with the collectives
replaced by recording autograd Functions (same shapes, no data exchange): its matmul FLOPs are
measured with ``torch.utils.flop_counter.FlopCounterMode`` and its collective calls are recorded,
and both must equal :func:`predict` exactly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from phantom_parallel import costs, costs_cli
from phantom_parallel.costs import FFNShape, predict

# --------------------------------------------------------------------------------------------
# single-rank emulation
# --------------------------------------------------------------------------------------------


class Recorder:
    """Collects (op, phase, numel, element_size) of emulated collectives."""

    def __init__(self, p: int) -> None:
        self.p = p
        self.calls: list[tuple[str, str, int, int]] = []

    def add(self, op: str, phase: str, t: torch.Tensor) -> None:
        if self.p > 1:
            self.calls.append((op, phase, t.numel(), t.element_size()))


class _ReduceFwd(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rec: Recorder) -> torch.Tensor:
        rec.add("all_reduce", "fwd", x)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        return g, None


class _CopyBwd(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rec: Recorder) -> torch.Tensor:
        ctx.rec = rec
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.rec.add("all_reduce", "bwd", g)
        return g.clone(), None


class _Scatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rec: Recorder) -> torch.Tensor:
        ctx.rec, ctx.n = rec, x.shape[-1]
        m = x.shape[-1] // rec.p
        return x[..., :m].contiguous()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.rec.add("all_gather", "bwd", g)
        return torch.cat([g] * ctx.rec.p, dim=-1), None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, rec: Recorder) -> torch.Tensor:
        ctx.rec = rec
        rec.add("all_gather", "fwd", g)
        return torch.stack([g] * rec.p)  # p x B x k

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.rec.add("reduce_scatter", "bwd", grad)
        return grad.sum(0), None


def _param(*size: int, dtype: torch.dtype) -> torch.Tensor:
    return (torch.randn(*size, dtype=dtype) * 0.1).requires_grad_(True)


def emulate(strategy: str, s: FFNShape) -> tuple[int, int, list[tuple[str, str, int, int]], int]:
    """One rank's fwd+bwd step. Returns (fwd FLOPs, bwd FLOPs, recorded calls, local params)."""
    dtype = {4: torch.float32, 8: torch.float64, 2: torch.bfloat16}[s.elem_bytes]
    torch.manual_seed(0)
    rec = Recorder(s.p)
    n, m, B, p, k = s.width, s.m, s.batch, s.p, s.ghosts
    params: list[torch.Tensor] = []

    def P(*size: int) -> torch.Tensor:
        t = _param(*size, dtype=dtype)
        params.append(t)
        return t

    x = torch.randn(B, s.d_in, dtype=dtype)
    target = torch.randn(B, s.d_out, dtype=dtype)
    with FlopCounterMode(display=False) as fc_fwd:
        h = torch.tanh(F.linear(x, P(m, s.d_in), P(m)))
        replicated = False
        for j in range(1, s.layers + 1):
            if strategy == "pp":
                W, b = P(m, m), P(m)
                z = F.linear(h, W, b)
                if p > 2:  # D_r stored m x pk (its zero block D_rr included), all p k ghosts
                    C, D = P(k, m), P(m, p * k)
                    G = _Gather.apply(F.linear(h, C), rec)  # p x B x k
                    z = z + G.permute(1, 0, 2).reshape(B, -1) @ D.t()
                elif p > 1:
                    C, D = P(k, m), P(m, (p - 1) * k)
                    G = _Gather.apply(F.linear(h, C), rec)  # p x B x k
                    others = G[1:].permute(1, 0, 2).reshape(B, -1)  # B x (p-1)k
                    z = z + others @ D.t()
                h = torch.tanh(z)
            elif strategy == "serial":
                h = torch.tanh(F.linear(h, P(n, n), P(n)))
            elif j % 2 == 1:  # row-parallel
                W, b = P(n, m), P(n)
                h = torch.tanh(_ReduceFwd.apply(F.linear(h, W), rec) + b)
                replicated = True
            else:  # column-parallel
                h = torch.tanh(F.linear(_CopyBwd.apply(h, rec), P(m, n), P(m)))
                replicated = False
        if replicated and p > 1:
            h = _Scatter.apply(h, rec)
        out = F.linear(h, P(s.d_out, m))
        out = (_ReduceFwd.apply(out, rec) if strategy != "serial" else out) + P(s.d_out)
        loss = F.mse_loss(out, target)
    with FlopCounterMode(display=False) as fc_bwd:
        loss.backward()
    return (
        fc_fwd.get_total_flops(),
        fc_bwd.get_total_flops(),
        rec.calls,
        sum(t.numel() for t in params),
    )


def _calls_of(cost: costs.CostBreakdown) -> list[tuple[str, str, int, int]]:
    return [(c.op, c.phase, c.numel, cost.shape.elem_bytes) for c in cost.calls]


@st.composite
def shapes(draw: Any, parallel: bool = True) -> FFNShape:
    p = draw(st.sampled_from([1, 2, 3, 4]) if parallel else st.just(1))
    m = draw(st.integers(1, 6))
    k = draw(st.integers(1, m))
    return FFNShape(
        d_in=draw(st.integers(1, 5)),
        width=m * p,
        layers=draw(st.integers(0, 4)),
        d_out=draw(st.integers(1, 4)),
        batch=draw(st.integers(1, 5)),
        p=p,
        ghosts=k,
        elem_bytes=draw(st.sampled_from([4, 8])),
    )


# --------------------------------------------------------------------------------------------
# exactness against FlopCounterMode and recorded collectives
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["tp", "pp", "dtensor"])
@settings(max_examples=40, deadline=None)
@given(s=shapes())
def test_predict_matches_emulation(strategy: str, s: FFNShape) -> None:
    fwd, bwd, calls, params = emulate("tp" if strategy == "dtensor" else strategy, s)
    cost = predict(strategy, s)
    assert cost.matmul_flops_fwd == fwd
    assert cost.matmul_flops_bwd == bwd
    assert cost.matmul_flops == fwd + bwd
    assert sorted(_calls_of(cost)) == sorted(calls)
    assert cost.params_per_rank == params
    assert cost.payload_bytes == sum(numel * e for _, _, numel, e in calls)
    for op in costs.COLLECTIVES:
        assert cost.comm_calls[op] == sum(1 for c in calls if c[0] == op)


@settings(max_examples=20, deadline=None)
@given(s=shapes(parallel=False))
def test_serial_matches_emulation(s: FFNShape) -> None:
    fwd, bwd, calls, params = emulate("serial", s)
    cost = predict("serial", s)
    assert (cost.matmul_flops_fwd, cost.matmul_flops_bwd) == (fwd, bwd)
    assert calls == [] and cost.n_comm_calls == 0 and cost.wire_bytes == 0
    assert cost.params_per_rank == cost.params_total == params


@pytest.mark.parametrize("layers", [0, 1, 2, 3, 4, 5])
def test_tp_call_pattern(layers: int) -> None:
    s = FFNShape(d_in=8, width=32, layers=layers, d_out=3, batch=5, p=4)
    c = predict("tp", s)
    n_odd, n_even = (layers + 1) // 2, layers // 2
    assert c.comm_calls_fwd == {"all_reduce": n_odd + 1, "all_gather": 0, "reduce_scatter": 0}
    assert c.comm_calls_bwd == {
        "all_reduce": n_even,
        "all_gather": layers % 2,
        "reduce_scatter": 0,
    }
    e = s.elem_bytes
    assert c.payload_bytes == (layers * 5 * 32 + 5 * 3 + (layers % 2) * 5 * 8) * e


def test_pp_call_pattern() -> None:
    s = FFNShape(d_in=8, width=32, layers=3, d_out=3, batch=5, p=4, ghosts=2)
    c = predict("pp", s)
    assert c.comm_calls_fwd == {"all_reduce": 1, "all_gather": 3, "reduce_scatter": 0}
    assert c.comm_calls_bwd == {"all_reduce": 0, "all_gather": 0, "reduce_scatter": 3}
    ag = [x for x in c.calls if x.op == "all_gather"]
    rs = [x for x in c.calls if x.op == "reduce_scatter"]
    assert all(x.payload_bytes == 5 * 2 * 4 for x in ag)
    assert all(x.payload_bytes == 5 * 4 * 2 * 4 for x in rs)
    assert all(x.wire_bytes == 3 * 5 * 2 * 4 for x in ag + rs)


# --------------------------------------------------------------------------------------------
# closed-form consequences
# --------------------------------------------------------------------------------------------


def _hidden(cost: costs.CostBreakdown, j: int = 1) -> costs.LayerCost:
    return next(layer for layer in cost.layers if layer.name == f"hidden{j}")


@pytest.mark.parametrize(("n", "p", "k"), [(1024, 8, 32), (96, 3, 5), (64, 2, 32), (256, 16, 1)])
def test_per_layer_flops_formulas(n: int, p: int, k: int) -> None:
    B = 64
    s = FFNShape(d_in=64, width=n, layers=4, d_out=8, batch=B, p=p, ghosts=k)
    m = n // p
    pp, tp = predict("pp", s), predict("tp", s)
    for j in range(1, 5):
        # every rank: with p > 2 the decompression also reads its own k ghosts (D_rr = 0)
        assert _hidden(pp, j).flops_fwd == 2 * B * m * (m + (p - 1) * k + k + (k if p > 2 else 0))
        assert _hidden(tp, j).flops_fwd == 2 * B * m * n
        assert _hidden(pp, j).flops_bwd == 2 * _hidden(pp, j).flops_fwd
        assert _hidden(tp, j).flops_bwd == 2 * _hidden(tp, j).flops_fwd


@pytest.mark.parametrize(("n", "p", "k"), [(1024, 8, 32), (96, 3, 5), (4096, 64, 4)])
def test_comm_ratio_is_k_over_m(n: int, p: int, k: int) -> None:
    B, e = 64, 4
    s = FFNShape(d_in=64, width=n, layers=4, d_out=8, batch=B, p=p, ghosts=k, elem_bytes=e)
    m = n // p
    pp, tp = predict("pp", s), predict("tp", s)
    pp_h = [c for c in pp.calls if c.layer.startswith("hidden")]
    tp_h = [c for c in tp.calls if c.layer.startswith("hidden")]
    # forward received per rank per PP layer: (p-1) B k elements
    for c in pp_h:
        if c.phase == "fwd":
            assert c.wire_bytes == (p - 1) * B * k * e
    # TP: one all-reduce of B x n per layer: 2 (p-1)/p B n = 2 (p-1) B m elements
    per_layer_tp = sum(c.wire_bytes for c in tp_h) / 4
    per_layer_pp = sum(c.wire_bytes for c in pp_h) / 4
    assert per_layer_tp == pytest.approx(2 * (p - 1) * B * m * e)
    assert per_layer_pp == pytest.approx(2 * (p - 1) * B * k * e)
    assert per_layer_pp / per_layer_tp == pytest.approx(k / m)


@pytest.mark.parametrize("strategy", ["pp", "tp", "dtensor"])
def test_p1_equals_serial(strategy: str) -> None:
    s = FFNShape(d_in=64, width=256, layers=3, d_out=8, batch=32, p=1, ghosts=16)
    a, b = predict(strategy, s), predict("serial", s)
    ra, rb = a.row(), b.row()
    ra.pop("strategy")
    rb.pop("strategy")
    assert ra == rb
    assert a.calls == () and a.wire_bytes == 0


def test_dtensor_equals_tp() -> None:
    s = FFNShape(d_in=64, width=256, layers=3, d_out=8, batch=32, p=4)
    a, b = predict("dtensor", s).row(), predict("tp", s).row()
    assert a.pop("strategy") == "dtensor"
    b.pop("strategy")
    assert a == b


@pytest.mark.parametrize(("n", "p"), [(1024, 8), (96, 3), (64, 2)])
def test_k_equals_m(n: int, p: int) -> None:
    """At k = m the W_rr + D GEMMs equal the TP layer; the compression GEMM C adds 2 B m^2
    (and with p > 2 every rank's zero block D_rr another 2 B m^2)."""
    B, m = 16, n // p
    s = FFNShape(d_in=4, width=n, layers=2, d_out=2, batch=B, p=p, ghosts=m)
    pp, tp = _hidden(predict("pp", s)), _hidden(predict("tp", s))
    extra = 2 if p > 2 else 1
    assert pp.flops_fwd - extra * 2 * B * m * m == tp.flops_fwd == 2 * B * m * n


@pytest.mark.parametrize(("n", "p"), [(1024, 8), (96, 3), (64, 2), (256, 16)])
def test_break_even_ghosts(n: int, p: int) -> None:
    m = n // p
    k_star = costs.pp_break_even_ghosts(n, p)
    assert k_star == m * (p - 1) / p
    dense = predict("tp", FFNShape(4, n, 3, 2, 8, p))
    for k in range(1, m + 1):
        pp = predict("pp", FFNShape(4, n, 3, 2, 8, p, k))
        h, ht = _hidden(pp), _hidden(dense)
        flops_star = m * (p - 1) / (p + 1) if p > 2 else k_star  # p > 2: + 2Bmk (D_rr)
        assert (pp.params_total < dense.params_total) == (k < k_star)
        assert (h.flops_fwd < ht.flops_fwd) == (k < flops_star)
        if k == k_star:
            assert pp.params_total == dense.params_total
        if k == flops_star:
            assert h.flops_fwd == ht.flops_fwd


def test_params() -> None:
    d_in, n, L, d_out, p, k = 64, 1024, 4, 8, 8, 32
    m = n // p
    dense = d_in * n + n + L * (n * n + n) + n * d_out + d_out
    s = FFNShape(d_in, n, L, d_out, 64, p, k)
    tp, pp, ser = predict("tp", s), predict("pp", s), predict("serial", s.replace(p=1))
    assert ser.params_total == tp.params_total == dense
    pp_hidden = p * (m * m + k * m + m * (p - 1) * k + m)  # free parameters
    assert pp.params_total == d_in * n + n + L * pp_hidden + n * d_out + d_out
    assert pp.params_total < dense
    stored = m * m + k * m + m * p * k + m  # D_r with its zero block D_rr (p > 2)
    assert pp.params_per_rank == m * d_in + m + L * stored + m * d_out + d_out
    assert pp.params_stored_total == p * pp.params_per_rank


def test_memory() -> None:
    s = FFNShape(64, 256, 3, 8, 32, 4, 8)
    adam, sgd = predict("pp", s, optimizer="adam"), predict("pp", s, optimizer="sgd")
    assert adam.state_bytes == 4 * adam.params_per_rank * 4
    assert sgd.state_bytes == 2 * sgd.params_per_rank * 4
    tanh, gelu = predict("tp", s), predict("tp", s, activation="gelu")
    assert gelu.activation_bytes > tanh.activation_bytes > 0
    assert adam.memory_bytes == adam.activation_bytes + adam.state_bytes
    # float64 doubles every byte count
    d = predict("pp", s.replace(elem_bytes=8))
    assert d.activation_bytes == 2 * adam.activation_bytes
    assert d.payload_bytes == 2 * adam.payload_bytes


def test_activation_estimate_matches_autograd_saved_tensors() -> None:
    """For tanh the estimate equals the distinct non-parameter tensors autograd saves (minus the
    loss's B x d_out prediction/target)."""
    s = FFNShape(d_in=6, width=12, layers=3, d_out=2, batch=5, p=1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 12),
        torch.nn.Tanh(),
        *[m for _ in range(3) for m in (torch.nn.Linear(12, 12), torch.nn.Tanh())],
        torch.nn.Linear(12, 2),
    )
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            seen[t.data_ptr()] = t.numel() * t.element_size()
        return t

    x = torch.randn(5, 6)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    loss_terms = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        before = set(seen)
        F.mse_loss(out, torch.zeros(5, 2)).backward()
        loss_terms = sum(seen[k] for k in set(seen) - before)
    assert sum(seen.values()) - loss_terms == predict("serial", s).activation_bytes


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_errors_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"n=100.*p=3"):
        FFNShape(8, 100, 2, 2, 4, 3, 1)
    with pytest.raises(ValueError, match=r"k=40.*m = n/p = 256/8 = 32"):
        predict("pp", FFNShape(8, 256, 2, 2, 4, 8, 40))
    with pytest.raises(ValueError, match="'mp'"):
        predict("mp", FFNShape(8, 256, 2, 2, 4, 8, 4))
    with pytest.raises(ValueError, match="p=8"):
        predict("serial", FFNShape(8, 256, 2, 2, 4, 8, 4))
    with pytest.raises(ValueError, match="k=0"):
        predict("pp", FFNShape(8, 256, 2, 2, 4, 8, 0))
    with pytest.raises(ValueError, match="batch"):
        FFNShape(8, 256, 2, 2, 0, 8, 4)
    with pytest.raises(ValueError, match="'lamb'"):
        predict("tp", FFNShape(8, 256, 2, 2, 4, 8), optimizer="lamb")
    with pytest.raises(ValueError, match="'foo'"):
        costs.ring_wire_bytes("foo", 10, 2)


def test_ring_wire_bytes() -> None:
    assert costs.ring_wire_bytes("all_reduce", 800, 4) == 1200
    assert costs.ring_wire_bytes("all_gather", 800, 4) == 2400
    assert costs.ring_wire_bytes("reduce_scatter", 800, 4) == 600
    for op in costs.COLLECTIVES:
        assert costs.ring_wire_bytes(op, 800, 1) == 0


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_csv(capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--strategy tp pp --width 1024 --layers 4 --p 1 2 4 8 --ghosts 32 --batch 64"
    assert costs_cli.main([*argv.split(), "--d-in", "64", "--d-out", "8", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["strategy", "d_in", "width"]
    assert len(lines) == 1 + 8
    row = dict(zip(header, lines[-1].split(","), strict=True))
    ref = predict("pp", FFNShape(64, 1024, 4, 8, 64, 8, 32))
    assert int(row["matmul_flops"]) == ref.matmul_flops
    assert int(row["payload_bytes"]) == ref.payload_bytes


def test_cli_json_and_skip(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *("--strategy", "serial", "pp", "--width", "256", "--p", "1", "4", "64"),
        *("--ghosts", "8", "--format", "json"),
    ]
    assert costs_cli.main(argv) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert [(r["strategy"], r["p"]) for r in rows] == [("serial", 1), ("pp", 1), ("pp", 4)]
    assert "--ghosts=8 must satisfy 1 <= k <= m = n/p = 256/64 = 4" in out.err
    assert "time_s" not in rows[-1]  # time is the projection's (phantom-costs project)
    assert costs_cli.main([*argv, "--strict"]) == 2
    assert capsys.readouterr().err.strip() == ("phantom-costs: error: --strict: --ghosts=8 must "
                                               "satisfy 1 <= k <= m = n/p = 256/64 = 4 for "
                                               "strategy 'pp'")
    assert costs_cli.main(["--strategy", "pp", "--width", "256", "--p", "64", "--ghosts", "8"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "phantom-costs: error: no valid grid point (every one was skipped, above)")


@pytest.mark.parametrize(("argv", "says"), [
    (["--ranks", "2", "0"], "--ranks=0 must be >= 1"),
    (["--width", "1024", "-256"], "--width=-256 must be >= 1"),
    (["--layers", "-1"], "--layers=-1 must be >= 0"),
    (["--ghosts", "0"], "--ghosts=0 must be >= 1"),
    (["--batch-size", "0"], "--batch-size=0 must be >= 1"),
    (["--d-in", "0"], "--d-in=0 must be >= 1"),
])
def test_cli_refuses_sizes_no_grid_point_can_have(argv: list[str], says: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Not an invalid grid point to skip (exit 0): bad input, one line, exit 2, no rows."""
    assert costs_cli.main(argv) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"phantom-costs: error: {says}\n"



# --------------------------------------------------------------------------------------------
# parameter tensors and GEMM calls
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 4])
def test_param_tensor_and_gemm_counts(p: int) -> None:
    L = 3
    s = FFNShape(6, 16, L, 3, 7, p, 2 if p > 1 else 0)
    tp, pp = predict("tp", s), predict("pp", s)
    assert tp.param_tensors_per_rank == 2 * (L + 2)
    assert pp.param_tensors_per_rank == 2 + (4 if p > 1 else 2) * L + 2
    # input: 1 fwd + 1 bwd (no dgrad); others 1 fwd + 2 bwd; PP hidden: local, compress and
    # one decompression GEMM (never one per peer) fwd, x2 bwd
    assert tp.matmul_calls == 2 + 3 * (L + 1)
    hidden = 9 if p > 1 else 3
    assert pp.matmul_calls == 2 + L * hidden + 3
    assert pp.row()["param_tensors_per_rank"] == pp.param_tensors_per_rank


def test_param_tensor_count_matches_the_model() -> None:
    from phantom_parallel.models import FFNConfig, build_model

    cfg = FFNConfig(d_in=6, width=16, layers=3, d_out=3)
    serial = build_model("serial", cfg, None, seed=0)
    assert len(list(serial.parameters())) == predict("serial", FFNShape(6, 16, 3, 3, 7)).param_tensors_per_rank
