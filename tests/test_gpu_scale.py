"""Issue 9: the phantom layer without a per-peer loop, rank-local init, one-process runs of
every strategy, the collective ledger's timing modes, and ``phantom-emulate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from phantom_parallel import param_init
from phantom_parallel.comm import Comm
from phantom_parallel.emulate import StandInComm
from phantom_parallel.layers import ColumnParallelLinear, PhantomLinear, _PhantomLinear
from phantom_parallel.models import FFNConfig, build_model
from phantom_parallel.param_init import dense_init
from phantom_parallel.reference import gather_reference
from tests.distributed_harness import run_on_ranks
from tests.scripts import load_script
from tests.test_counts import _one_step

F64 = torch.float64


# ----------------------------------------------------------------------------- phantom layer
class _FixedPeers:
    """Rank ``rank`` of p whose all-gather puts its ghosts among fixed peers' ghosts (p k x B)
    and whose reduce-scatter keeps its own slot (the peers add nothing)."""

    def __init__(self, p: int, rank: int, peers_t: torch.Tensor) -> None:
        self.world_size, self.rank, self.peers_t = p, rank, peers_t

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        out = self.peers_t.detach().clone()
        out[self.rank * t.shape[0]:(self.rank + 1) * t.shape[0]] = t
        return out.view(self.world_size, *t.shape)

    def reduce_scatter(self, t: torch.Tensor) -> torch.Tensor:
        return t[self.rank].clone()


@pytest.mark.parametrize(("p", "rank"), [(2, 0), (2, 1), (3, 1), (4, 0), (4, 2), (4, 3)])
def test_phantom_layer_is_the_block_sum_and_passes_gradcheck(p: int, rank: int) -> None:
    """Rank r's phantom layer = h W^T + b + sum over peers s of g_s D_rs^T (float64), and its
    hand-written backward passes gradcheck in every input, D_r in its free entries (with
    p > 2 D_r holds the zero block D_rr, whose gradient is exactly zero). The cross-rank
    adjoint, the reduce-scatter, is checked on gloo ranks in tests/test_operators.py."""
    k, batch, m = 2, 3, 4
    gen = torch.Generator().manual_seed(p * 10 + rank)
    peers_t = torch.randn(p * k, batch, generator=gen, dtype=F64)
    layer = PhantomLinear(m * p, k, _FixedPeers(p, rank, peers_t), dtype=F64)  # type: ignore[arg-type]
    peers = [s for s in range(p) if s != rank]
    w, b, c = (torch.randn(t.shape, generator=gen, dtype=F64)
               for t in (layer.weight, layer.bias, layer.compress))
    d_peers = torch.randn(m, (p - 1) * k, generator=gen, dtype=F64)  # [D_rs for s != r]

    def widen(d: torch.Tensor) -> torch.Tensor:  # D_r as the layer stores it
        if not layer.reads_all:
            return d
        lo = rank * k
        return torch.cat((d[:, :lo], d.new_zeros(m, k), d[:, lo:]), 1)

    with torch.no_grad():
        for param, value in zip(layer.parameters(), (w, b, c, widen(d_peers)), strict=True):
            param.copy_(value)
    h = torch.randn(batch, m, generator=gen, dtype=F64, requires_grad=True)
    expected = h @ w.t() + b + sum(peers_t[s * k:(s + 1) * k].t() @ d_peers[:, j * k:(j + 1) * k].t()
                                   for j, s in enumerate(peers))
    out = layer(h)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    assert layer.decompress.grad.shape == layer.decompress.shape
    if layer.reads_all:
        assert not layer.decompress.grad[:, layer.own_rows].any()
    inputs = (h, *(t.requires_grad_() for t in (w, b, c, d_peers)))
    assert torch.autograd.gradcheck(
        lambda x, w_, b_, c_, d_: _PhantomLinear.apply(x, w_, b_, c_, widen(d_), layer),
        inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_zero_block_stays_zero_under_training_and_is_checked_when_gathered(optimizer: str) -> None:
    """D_rr gets an exactly zero gradient, so Adam, AdamW (weight decay) and SGD with momentum
    leave it zero while the rest of D_r trains; peer_columns refuses a D_r whose D_rr is not."""
    from phantom_parallel.param_init import peer_columns

    p, r, k, m = 4, 2, 2, 3
    layer = PhantomLinear(m * p, k, StandInComm(p, r), dtype=F64)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in layer.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=F64))
        layer.decompress[:, layer.own_rows] = 0
    start = layer.decompress.detach().clone()
    opt = {"adam": lambda ps: torch.optim.Adam(ps, lr=0.1),
           "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.5),
           "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)}[optimizer](layer.parameters())
    for _ in range(5):
        opt.zero_grad()
        layer(torch.randn(4, m, generator=gen, dtype=F64)).square().sum().backward()
        opt.step()
    own = layer.decompress.detach()[:, layer.own_rows]
    assert torch.equal(own, torch.zeros_like(own))
    assert not torch.equal(layer.decompress.detach(), start)  # the peers' blocks trained
    assert peer_columns(layer.decompress.detach(), r, p, k).shape == (m, (p - 1) * k)
    with torch.no_grad():
        layer.decompress[0, layer.own_rows.start] = 1.0
    with pytest.raises(ValueError, match="rank 2's decompress has nonzero entries in its own"):
        peer_columns(layer.decompress.detach(), r, p, k)


def _phantom_gemms(p: int, rank: int) -> int:
    """GEMM calls of one forward + backward of a phantom layer (rank ``rank`` of ``p``)."""
    layer = PhantomLinear(16 * p, 2, StandInComm(p, rank), dtype=F64)  # type: ignore[arg-type]
    for param in layer.parameters():
        torch.nn.init.normal_(param)
    h = torch.randn(5, 16, dtype=F64, requires_grad=True)
    calls = 0

    class Count(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm)
            return func(*args, **(kwargs or {}))

    with Count():
        layer(h).sum().backward()
    return calls


def test_phantom_layer_gemm_count_does_not_grow_with_p_and_is_the_same_on_every_rank() -> None:
    """9 GEMMs (3 forward, 6 backward) on rank 0, p-1 and the interior ranks at any p."""
    counts = {(p, r): _phantom_gemms(p, r) for p, r in
              ((2, 0), (2, 1), (3, 1), (4, 2), (64, 0), (64, 63), (256, 100), (256, 255))}
    assert set(counts.values()) == {9}, counts


def test_every_rank_of_a_pp_step_dispatches_the_same_operators() -> None:
    """Every rank of a phantom layer dispatches the same operators (so a step waits for none
    and phantom-emulate's default rank 0 stands for all), 9 of them GEMMs."""
    from phantom_parallel.emulate_comm import CountOps

    for p in (2, 3, 8):
        counts = {}
        for r in range(p):
            layer = PhantomLinear(8 * p, 2, StandInComm(p, r))  # type: ignore[arg-type]
            for param in layer.parameters():
                torch.nn.init.normal_(param)
            h = torch.randn(4, 8, requires_grad=True)
            layer(h).sum().backward()
            layer.zero_grad(set_to_none=True)
            with CountOps() as ops:
                layer(h).sum().backward()
            counts[r] = (ops.count, ops.other_names["mm"] + ops.other_names["addmm"])
        assert len(set(counts.values())) == 1, (p, counts)
        assert {g for _, g in counts.values()} == {9}


# ----------------------------------------------------------------------------- init
@pytest.mark.parametrize("p", [2, 3, 4, 6])
def test_rank_local_init_is_bit_identical_to_the_full_layer(p: int) -> None:
    out_f, in_f = 36, 30  # tiles of 8: clipped edge tiles, shards that cut tiles
    w, b = dense_init(5, "hidden.1", out_f, in_f, torch.float32, tile=8)
    for r in range(p):
        rows = range(r * out_f // p, (r + 1) * out_f // p)
        ws, bs = dense_init(5, "hidden.1", out_f, in_f, torch.float32, rows=rows, tile=8)
        assert torch.equal(ws, w[rows.start:rows.stop]) and torch.equal(bs, b[rows.start:rows.stop])
        cols = range(r * in_f // p, (r + 1) * in_f // p)
        ws, bs = dense_init(5, "hidden.1", out_f, in_f, torch.float32, cols=cols, tile=8)
        assert torch.equal(ws, w[:, cols.start:cols.stop]) and torch.equal(bs, b)
    assert w.abs().max() <= 1 / in_f**0.5


def test_a_rank_draws_only_the_tiles_of_its_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    real = param_init._uniform
    monkeypatch.setattr(param_init, "_uniform",
                        lambda shape, *a: drawn.append(shape[0] * shape[1]) or real(shape, *a))
    n, p, tile = 256, 8, 16
    dense_init(0, "hidden.0", n, n, torch.float32, rows=range(0, n // p), tile=tile)
    assert sum(drawn) == (n // p) * n + n // p  # weight rows and bias entries of the shard
    drawn.clear()
    dense_init(0, "hidden.0", n, n, torch.float32, tile=tile)
    assert sum(drawn) == n * n + n


def test_init_cost_compares_both_rules_and_refuses_bad_input(tmp_path: Path) -> None:
    """benchmarks/init_cost.py, tiny: both rules' numbers and their ratios in the JSON; a rank
    outside p is one usage line, nothing written."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "init_cost.py"
    out = tmp_path / "init.json"
    res = subprocess.run([sys.executable, str(script), "--width", "64", "--layers", "2",
                          "--ranks", "4", "--rank", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())
    assert set(got["variants"]) == {"whole-layer", "rank-local"} and got["rank"] == 1
    for key, ratio in got["rank_local_over_whole_layer"].items():
        assert ratio == got["variants"]["rank-local"][key] / got["variants"]["whole-layer"][key]
    bad = tmp_path / "bad.json"
    res = subprocess.run([sys.executable, str(script), "--ranks", "4", "--rank", "4",
                          "--json", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--rank" in res.stderr.splitlines()[-1] and not bad.exists()


def _tp_weights_equal_serial(comm: Comm) -> str:
    cfg = FFNConfig(d_in=70, width=12 * comm.world_size, layers=3, d_out=5)
    serial = build_model("serial", cfg, None, seed=4)
    tp = build_model("tp", cfg, comm, seed=4)
    dt = build_model("dtensor", cfg, comm, seed=4)
    ref = gather_reference(tp, "tp", comm, dtype=torch.float32)
    ref_dt = gather_reference(dt, "dtensor", comm, dtype=torch.float32)
    for (name, a), b, c in zip(serial.named_parameters(), ref.parameters(), ref_dt.parameters(),
                               strict=True):
        assert torch.equal(a, b) and torch.equal(a, c), name
    return "ok"


@pytest.mark.parametrize("p", [2, 3])
def test_serial_tp_and_dtensor_start_bit_identical(p: int) -> None:
    assert run_on_ranks(_tp_weights_equal_serial, p) == ["ok"] * p


# ----------------------------------------------------------------------------- one process
@pytest.mark.parametrize("strategy", ["tp", "pp"])
def test_tp_and_pp_run_on_one_process_as_the_dense_ffn(strategy: str) -> None:
    cfg = FFNConfig(d_in=6, width=16, layers=3, d_out=2)
    model = build_model(strategy, cfg, None, ghosts=4 if strategy == "pp" else None, seed=3,
                        dtype=F64)
    dense = build_model("serial", cfg, None, seed=3, dtype=F64)
    x = torch.randn(7, 6, dtype=F64)
    torch.testing.assert_close(model(x), dense(x), rtol=1e-12, atol=1e-12)


def test_comm_rejects_an_unknown_timing_mode() -> None:
    with pytest.raises(ValueError, match="timing='sometimes'"):
        Comm(timing="sometimes")
    solo = Comm()
    assert (solo.rank, solo.world_size) == (0, 1)


def _cpu_ledger_times(comm: Comm) -> tuple[int, bool]:
    """CPU collectives are timed by the host clock whatever the accelerator timing mode."""
    out = []
    for timing in ("events", "off"):
        c = Comm(timing=timing)
        c.all_reduce(torch.ones(1000))
        out.append(c.ledger.seconds > 0)
    return c.ledger.total_calls, all(out)


def test_cpu_ledger_is_timed_in_every_mode() -> None:
    assert run_on_ranks(_cpu_ledger_times, 2) == [(1, True)] * 2


# ----------------------------------------------------------------------------- emulate
def _emulated_flops(strategy: str, p: int, cfg: FFNConfig, batch: int, ghosts: int | None) -> int:
    model = build_model(strategy, cfg, StandInComm(p, 0), ghosts=ghosts, seed=1)  # type: ignore[arg-type]
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.mse_loss(model(torch.randn(batch, cfg.d_in)),
                                     torch.randn(batch, cfg.d_out)).backward()
    return int(counter.get_total_flops())


@pytest.mark.parametrize(("strategy", "p"), [("tp", 2), ("tp", 4), ("pp", 2), ("pp", 4)])
def test_emulated_rank0_counts_the_flops_of_a_real_gloo_rank0(strategy: str, p: int) -> None:
    cfg = FFNConfig(d_in=6, width=16, layers=3, d_out=3)
    ghosts = 2 if strategy == "pp" else None
    real = run_on_ranks(_one_step, p, strategy, cfg, 7, ghosts, torch.float32)[0]["flops"]
    assert _emulated_flops(strategy, p, cfg, 7, ghosts) == real


def _emulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phantom_parallel.emulate", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_emulate_cli_writes_every_field(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    res = _emulate("--strategy", "serial", "tp", "pp", "--width", "64", "--layers", "2",
                   "--ghosts", "4", "--batch", "8", "--ranks", "2", "4", "--steps", "2",
                   "--warmup", "1", "--power-source", "none", "--threads", "1", "--json", str(out))
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["strategy"], r["p"]) for r in rows] == [("serial", 1), ("tp", 2), ("pp", 2),
                                                       ("tp", 4), ("pp", 4)]
    for r in rows:
        assert r["matmul_flops"] == r["predicted_matmul_flops"] > 0
        assert r["step_s"] > 0 and 0 < r["view_ops_per_step"] < r["ops_per_step"]
        assert r["host_s"] > 0  # on CPU the host computes: a step's own time
        assert r["energy_j_per_step"] is None and r["energy_method"].startswith("none")
        for key in ("n", "k", "batch", "dtype", "device", "fwd_s", "bwd_s", "opt_s",
                    "achieved_flop_rate", "peak_memory_bytes"):
            assert key in r
    assert "pp" in res.stdout and "step ms" in res.stdout and "host ms" in res.stdout
    assert json.loads(out.read_text())["complete"] is True


def test_emulate_rounds_time_strategies_side_by_side_with_ratios_per_round(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    res = _emulate("--strategy", "serial", "tp", "pp", "--width", "64", "--layers", "2",
                   "--ghosts", "4", "--batch", "8", "--ranks", "2", "4", "--steps", "6",
                   "--rounds", "3", "--warmup", "1", "--power-source", "none", "--threads", "1",
                   "--json", str(out))
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["strategy"], r["p"]) for r in rows] == [("serial", 1), ("tp", 2), ("pp", 2),
                                                       ("tp", 4), ("pp", 4)]
    for r in rows:
        assert r["rounds"] == 3 and len(r["round_step_s"]) == 3 and min(r["round_step_s"]) > 0
        assert r["matmul_flops"] == r["predicted_matmul_flops"] > 0
    by = {(r["strategy"], r["p"]): r for r in rows}
    ratios = {(q["strategy"], q["p"]): q for q in data["round_ratios"]}
    assert set(ratios) == {("pp", 2), ("pp", 4)}  # serial is not at p = 2 or 4
    for (s, p), q in ratios.items():
        per_round = [a / b for a, b in zip(by[(s, p)]["round_step_s"], by[("tp", p)]["round_step_s"], strict=True)]
        assert q["vs"] == "tp" and q["rounds"] == 3
        assert q["min"] <= q["median"] <= q["max"]
        assert q["median"] == pytest.approx(sorted(per_round)[1])
    assert "pp/tp step time" in res.stdout and "interleaved rounds" in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--ranks", "3"), "--ranks: width n=64 is not divisible by the number of ranks p=3"),
    (("--ranks", "8", "--ghosts", "9"), "--ghosts: ghosts k=9 must satisfy 1 <= k <= m"),
    (("--cuda-graph",), "--cuda-graph needs --device cuda"),
    (("--dtype", "float8"), "--dtype 'float8'"),
    (("--device", "tpu"), "--device 'tpu'"),
    (("--steps", "4", "--rounds", "5"), "--rounds 5: must be between 1 and --steps (4)"),
    (("--steps", "0"), "--steps=0 must be >= 1"),
    (("--warmup", "-1"), "--warmup=-1 must be >= 0"),
    (("--threads", "-1"), "--threads=-1 must be >= 1"),
    (("--energy-window-s", "0"), "--energy-window-s=0.0 must be > 0"),
])
def test_emulate_rejects_bad_input_in_one_line_writing_nothing(tmp_path: Path, args, message) -> None:
    out = tmp_path / "e.json"
    res = _emulate("--width", "64", "--ghosts", "4", "--power-source", "none", "--json", str(out),
                   *args)
    assert res.returncode != 0
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_emulate_refuses_cuda_without_a_gpu() -> None:
    res = _emulate("--width", "64", "--device", "cuda", "--power-source", "none")
    assert res.returncode != 0 and "--device cuda: torch sees no GPU" in res.stderr


def test_emulate_gemm_table_times_every_gemm_of_the_steps_as_a_loadable_table(tmp_path: Path) -> None:
    import yaml

    from phantom_parallel import hardware, timing
    from phantom_parallel.costs import FFNShape, predict

    table = tmp_path / "gemms.yaml"
    res = _emulate("--strategy", "serial", "tp", "pp", "--width", "64", "--layers", "2",
                   "--ghosts", "4", "--batch", "8", "--ranks", "2", "4", "--steps", "2",
                   "--warmup", "1", "--power-source", "none", "--threads", "1",
                   "--gemm-table", str(table))
    assert res.returncode == 0, res.stderr
    hw_dir = Path(hardware.__file__).resolve().parents[2] / "config" / "hardware"
    (tmp_path / "schema.yaml").write_text((hw_dir / "schema.yaml").read_text())
    data = yaml.safe_load((hw_dir / "local-cpu.yaml").read_text())
    data.update(name="local-gemms", **yaml.safe_load(table.read_text()))
    (tmp_path / "local-gemms.yaml").write_text(yaml.safe_dump(data))
    hw = hardware.load("local-gemms", folder=tmp_path)
    assert "--gemm-table" in hw.gemm_table_source and "cpu" in hw.gemm_table_source
    measured = {(g.m, g.k, g.n) for g in hw.gemm_table}
    assert all(g.elem_bytes == 4 and g.seconds > 0 for g in hw.gemm_table)
    wanted = set()
    for strategy, ps in (("serial", [1]), ("tp", [2, 4]), ("pp", [2, 4])):
        for p in ps:
            shape = FFNShape(64, 64, 2, 8, 8, p, 4 if strategy == "pp" else 0, 4)
            wanted |= set(timing.step_gemms(predict(strategy, shape)))
    assert measured == wanted
    for m, k, n in wanted:  # every GEMM of these steps is predicted from its own measurement
        assert (hw.nearest_gemm(m, k, n, 4).m, hw.nearest_gemm(m, k, n, 4).k,
                hw.nearest_gemm(m, k, n, 4).n) == (m, k, n)


def test_emulate_gemm_table_into_a_missing_folder_is_refused_before_running(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    res = _emulate("--width", "64", "--ghosts", "4", "--power-source", "none", "--json", str(out),
                   "--gemm-table", str(tmp_path / "nowhere" / "g.yaml"))
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "--gemm-table" in res.stderr and "does not exist" in res.stderr
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_emulate_refuses_a_json_path_where_no_file_can_be_created_before_running(
        capsys: pytest.CaptureFixture[str]) -> None:
    """/proc passes a permission-bit check for root; the JSON written after minutes of
    measurement would fail there, so the check creates (and removes) an entry first."""
    from phantom_parallel import emulate

    with pytest.raises(SystemExit) as exc:
        emulate.validate(emulate.parse_args(["--width", "64", "--ghosts", "4", "--power-source",
                                             "none", "--json", "/proc/e.json"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("phantom-emulate: error: --json /proc/e.json: /proc is not writable")
    assert len(err.strip().splitlines()) == 1


def test_emulate_refuses_a_power_source_that_does_not_work_before_running(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from phantom_parallel import emulate
    from phantom_parallel.energy import sources

    def broken(name: str, **_: object) -> None:
        raise sources.SourceError("no RAPL zones under /sys/class/powercap")

    monkeypatch.setattr(sources, "resolve", broken)
    with pytest.raises(SystemExit) as exc:
        emulate.validate(emulate.parse_args(["--width", "64", "--ghosts", "4", "--power-source",
                                             "rapl"]))
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(
        "phantom-emulate: error: --power-source rapl: no RAPL zones")


def test_emulate_refuses_one_file_for_both_outputs(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from phantom_parallel import emulate

    argv = ["--width", "64", "--ghosts", "4", "--power-source", "none", "--json",
            str(tmp_path / "x"), "--gemm-table", str(tmp_path / "." / "x")]
    with pytest.raises(SystemExit):
        emulate.validate(emulate.parse_args(argv))
    assert "--json and --gemm-table name the same file" in capsys.readouterr().err


def test_emulate_replaces_existing_outputs_atomically(tmp_path: Path) -> None:
    """An existing --json or --gemm-table is replaced by rename: its old inode (a hard link
    here) keeps the old text, never a half-written new one."""
    out, table = tmp_path / "e.json", tmp_path / "g.yaml"
    for f in (out, table):
        f.write_text("old\n")
        os.link(f, tmp_path / f"{f.name}.old")
    res = _emulate("--strategy", "tp", "--width", "16", "--layers", "1", "--ghosts", "1",
                   "--batch", "4", "--ranks", "2", "--steps", "1", "--warmup", "0",
                   "--power-source", "none", "--threads", "1", "--json", str(out),
                   "--gemm-table", str(table))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["rows"] and "gemm_table" in table.read_text()
    assert {f.name: f.read_text() for f in tmp_path.glob("*.old")} == {"e.json.old": "old\n",
                                                                      "g.yaml.old": "old\n"}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["e.json", "e.json.old", "g.yaml",
                                                          "g.yaml.old"]


def test_op_counter_tells_views_from_operators_that_launch_work() -> None:
    from phantom_parallel.emulate_comm import CountOps

    x, w = torch.randn(4, 6), torch.randn(5, 6)
    with CountOps() as ops:
        y = x.view(2, 12).t().unsqueeze(0)  # three views
    assert (ops.count, ops.views) == (3, 3) and y.shape == (1, 12, 2)
    with CountOps() as ops:
        torch.mm(x, w.t()).sum()  # t is a view; mm and sum launch work
    assert (ops.count, ops.views) == (3, 1)


def test_layer_op_counts_behind_the_readme_claim(capsys) -> None:  # type: ignore[no-untyped-def]
    """README (At GPU scale): a phantom layer runs 9 GEMMs per step, a TP layer 3; the phantom
    layer dispatches 13 operators that are not views and 18 views (no indexing view of G^T)."""
    mod = load_script("benchmarks/layer_ops.py")
    comm = StandInComm(256, 0)  # layer_ops' default rank (every rank's count is the same)
    pp = mod.count(PhantomLinear(2048, 4, comm), torch.randn(8, 8, requires_grad=True))
    col = mod.count(ColumnParallelLinear(2048, 2048, comm), torch.randn(8, 2048, requires_grad=True))
    gemms = lambda ops: ops.other_names["mm"] + ops.other_names["addmm"]  # noqa: E731
    assert gemms(pp) == 9 and gemms(col) == 3
    assert pp.count - pp.views == 13 and col.count - col.views == 6 and pp.views == 18
    for argv, flag in ((["--rank", "300"], "--rank 300"), (["--ghosts", "100"], "--ghosts 100")):
        with pytest.raises(SystemExit) as stop:
            mod.main(argv)
        assert stop.value.code == 2, argv
        assert flag in capsys.readouterr().err


def test_emulate_counts_the_operators_of_a_steady_step() -> None:
    """ops_per_step is what every later step dispatches, not the first step (which also
    creates the optimizer's state)."""
    import argparse

    from phantom_parallel.emulate_comm import CountOps
    from phantom_parallel.emulate_step import prepare

    args = argparse.Namespace(d_in=16, width=64, layers=2, d_out=4, ghosts=4, batch=8, rank=0,
                              dtype="float32", cuda_graph=False, warmup=0)
    for strategy in ("tp", "pp"):
        step, info = prepare(strategy, 4, args, torch.device("cpu"))
        with CountOps() as later:
            step.run()
        assert (info["ops_per_step"], info["view_ops_per_step"]) == (later.count, later.views)


def test_gpu_check_summary_signs_the_ledger_cost(tmp_path: Path) -> None:
    """benchmarks/gpu/summarize.py on a check folder with only ledger.json: each timing mode's
    cost against timing off carries one sign, and the verdict reads the events mode."""
    rows = {name: {"median_step_s": step, "median_comm_s": 0.01, "steps": 140, "final_loss": 0.1}
            for name, step in (("tp-off", 0.0200), ("tp-events", 0.0195),
                               ("tp-device-sync", 0.0210), ("pp-events", 0.0130))}
    (tmp_path / "ledger.json").write_text(json.dumps(rows))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "summarize.py"
    res = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": "src"},
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr
    assert "(-2.5 % vs timing off)" in res.stdout and "(+5.0 % vs timing off)" in res.stdout
    assert "adds -2.5 % to the step: PASS" in res.stdout
