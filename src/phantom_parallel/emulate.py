"""``phantom-emulate``: rank r's share of a p-rank training step, on one device.

Builds rank ``--rank``'s shard of the serial, TP or PP model exactly as ``phantom-train`` would
at world size p, with every collective replaced by a local stand-in of the same output shape
and comparable memory traffic (:class:`StandInComm`), and times forward + MSE + backward + Adam.
What is measured is the rank's computation, kernel launches and memory traffic, with no peer
to wait for: the communication itself is what :mod:`phantom_parallel.costs` models.

Timing: CUDA events per phase (no host sync inside a step; one at the end), host clock on
CPU; medians over ``--steps`` after ``--warmup``. ``--cuda-graph`` captures the whole step
once and replays it (phases are then not separable). Energy per step comes from the project's
own sampler (:mod:`phantom_parallel.energy`) over a window of back-to-back steps when a sensor
exists, and is null otherwise (never modelled).

Example::

    phantom-emulate --strategy tp pp --width 8192 --layers 2 --ghosts 16 --batch 256 \\
        --ranks 8 64 256 --json emulate.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from phantom_parallel import __version__, cli
from phantom_parallel.comm import CommLedger
from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.emulate_energy import EnergyMeter
from phantom_parallel.models import STRATEGIES, FFNConfig, build_model, validate_layout
from phantom_parallel.train import DTYPES, POWER_SOURCES, cpu_model, make_optimizer

EMULATED = tuple(s for s in STRATEGIES if s not in ("dtensor", "fsdp"))  # need a real group


class StandInComm:
    """Rank ``rank`` of ``world_size`` virtual ranks; each collective is a local stand-in:

    - all-gather: the local chunk written to all p slots of a new ``p x ...`` buffer (writes
      p chunks, as receiving them does);
    - reduce-scatter: the sum over the p chunks (reads p chunks, writes one);
    - all-reduce: one in-place read and write of the tensor (values unchanged).

    Calls and payload bytes are counted in :attr:`ledger` like :class:`~phantom_parallel.comm.Comm`.
    """

    def __init__(self, world_size: int, rank: int = 0) -> None:
        self.rank, self.world_size, self.group, self.ledger = rank, world_size, None, CommLedger()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            self.ledger.record("all_reduce", t.numel() * t.element_size())
            t.mul_(1)
        return t

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            self.ledger.record("all_gather", t.numel() * t.element_size())
        return t.unsqueeze(0).expand(self.world_size, *t.shape).contiguous()

    def reduce_scatter(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return t[0]
        self.ledger.record("reduce_scatter", t.numel() * t.element_size())
        return t.sum(0)


class CountOps(TorchDispatchMode):
    """Counts the aten operators dispatched inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = cli.parser("phantom-emulate", __doc__)
    ap.add_argument("--strategy", nargs="+", default=["tp", "pp"], help=f"of {', '.join(EMULATED)}")
    ap.add_argument("--width", type=int, required=True, help="hidden width n")
    ap.add_argument("--layers", type=int, default=4, help="hidden n x n layers L")
    ap.add_argument("--ghosts", type=int, default=32, help="ghosts k per rank (pp)")
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=1024,
                    help="batch size B (samples per step), as phantom-train's --batch-size")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8], help="world sizes p to emulate")
    ap.add_argument("--rank", type=int, default=0, help="the rank r whose share is run")
    ap.add_argument("--d-in", type=int, default=64, help="input features")
    ap.add_argument("--d-out", type=int, default=8, help="output features")
    ap.add_argument("--dtype", default="float32", help=f"of {', '.join(DTYPES)}")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--cuda-graph", action="store_true", help="capture the step, time replays")
    ap.add_argument("--power-source", default="auto", help=f"of {', '.join(POWER_SOURCES)}")
    ap.add_argument("--energy-window-s", type=float, default=2.0,
                    help="seconds of back-to-back steps per energy reading")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    return ap.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """One-line errors naming the flag and value, before anything runs or is written."""
    def bad(msg: str) -> None:
        raise SystemExit(f"phantom-emulate: error: {msg}")

    for s in args.strategy:
        if s not in EMULATED:
            bad(f"--strategy {s!r}: choose from {', '.join(EMULATED)}")
    if args.dtype not in DTYPES:
        bad(f"--dtype {args.dtype!r}: choose from {', '.join(DTYPES)}")
    if args.power_source not in POWER_SOURCES:
        bad(f"--power-source {args.power_source!r}: choose from {', '.join(POWER_SOURCES)}")
    if args.device not in ("cpu", "cuda"):
        bad(f"--device {args.device!r}: use cpu or cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        bad("--device cuda: torch sees no GPU here")
    if args.cuda_graph and args.device != "cuda":
        bad(f"--cuda-graph needs --device cuda (got --device {args.device})")
    for key in ("width", "layers", "batch", "steps", "d_in", "d_out"):
        if getattr(args, key) < (0 if key == "layers" else 1):
            flag = "--batch-size" if key == "batch" else f"--{key.replace('_', '-')}"
            bad(f"{flag} {getattr(args, key)} is too small")
    for p in args.ranks:
        if p < 1:
            bad(f"--ranks {p}: must be >= 1")
        if not 0 <= args.rank < p:
            bad(f"--rank {args.rank} is not a rank of p = {p} (--ranks)")
        for s in args.strategy:
            if s == "serial":
                continue
            try:
                validate_layout(s, args.width, p, args.ghosts if s == "pp" else None)
            except ValueError as err:
                flag = "--ghosts" if "ghosts" in str(err) else "--ranks"
                bad(f"{flag}: {err}")
    if args.json is not None and not args.json.parent.exists():
        bad(f"--json {args.json}: folder {args.json.parent} does not exist")


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: reset this process's VmHWM (peak resident set)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def _peak_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Step:
    """One rank's model, optimizer and fixed batch; :meth:`run` is one training step."""

    def __init__(self, strategy: str, p: int, args: argparse.Namespace, device: torch.device):
        dtype = DTYPES[args.dtype]
        cfg = FFNConfig(args.d_in, args.width, args.layers, args.d_out)
        comm = None if strategy == "serial" else StandInComm(p, args.rank)
        self.model = build_model(strategy, cfg, comm,  # type: ignore[arg-type]
                                 ghosts=args.ghosts if strategy == "pp" else None, seed=0,
                                 device=device, dtype=dtype)
        self.opt = make_optimizer("adam", self.model, lr=1e-4, capturable=args.cuda_graph)
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(args.batch, args.d_in, generator=gen).to(device, dtype)
        self.y = torch.randn(args.batch, args.d_out, generator=gen).to(device, dtype)
        self.cuda = device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None

    def _mark(self, marks: list[Any] | None, i: int) -> None:
        """Phase boundary i: record CUDA event ``marks[i]``, or append the host clock."""
        if marks is None:
            return
        if self.cuda:
            marks[i].record()
        else:
            marks.append(time.perf_counter())

    def run(self, marks: list[Any] | None = None) -> None:
        """One step. ``marks``: 4 CUDA events to record at the phase boundaries (start, after
        forward + loss, after backward, after the optimizer), or on CPU an empty list that
        receives the 4 host times; in graph mode only the first and last are recorded."""
        self._mark(marks, 0)
        if self.graph is not None:
            self.graph.replay()
            self._mark(marks, 3)
            return
        loss = F.mse_loss(self.model(self.x).float(), self.y.float())
        self._mark(marks, 1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._mark(marks, 2)
        self.opt.step()
        self._mark(marks, 3)

    def capture(self) -> None:
        """Warm up on a side stream, then capture one whole step as a CUDA graph."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            F.mse_loss(self.model(self.x).float(), self.y.float()).backward()
            self.opt.step()
        self.graph = graph


def _phase_times(step: Step, steps: int) -> list[tuple[float, float, float, float]]:
    """(forward, backward, optimizer, step) seconds of each timed step; NaN phases in graph
    mode. CUDA: events only, one host sync after the last step."""
    nan = float("nan")
    if not step.cuda:
        out = []
        for _ in range(steps):
            marks: list[float] = []
            step.run(marks)
            a, b, c, d = marks
            out.append((b - a, c - b, d - c, d - a))
        return out
    events = [[torch.cuda.Event(enable_timing=True) for _ in range(4)] for _ in range(steps)]
    torch.cuda.synchronize()
    for ev in events:
        step.run(ev)
    torch.cuda.synchronize()
    if step.graph is not None:
        return [(nan, nan, nan, ev[0].elapsed_time(ev[3]) / 1e3) for ev in events]
    return [tuple(ev[i].elapsed_time(ev[j]) / 1e3 for i, j in ((0, 1), (1, 2), (2, 3), (0, 3)))
            for ev in events]  # type: ignore[misc]


def measure(strategy: str, p: int, args: argparse.Namespace, device: torch.device,
            meter: EnergyMeter) -> dict[str, Any]:
    """One row: median phase times (s), counted and predicted matmul FLOPs, ops, memory and
    (when a sensor exists) energy per step."""
    _peak_reset(device)
    step = Step(strategy, p, args, device)
    with FlopCounterMode(display=False) as flops:
        F.mse_loss(step.model(step.x).float(), step.y.float()).backward()
    step.model.zero_grad(set_to_none=True)
    with CountOps() as ops:
        step.run()
    for _ in range(args.warmup):
        step.run()
    if args.cuda_graph:
        step.capture()
    fwd, bwd, opt, total = (statistics.median(col)
                            for col in zip(*_phase_times(step, args.steps), strict=True))
    energy = meter.measure(step.run, total, device)
    elem = torch.tensor([], dtype=DTYPES[args.dtype]).element_size()
    shape = FFNShape(args.d_in, args.width, args.layers, args.d_out, args.batch, p,
                     args.ghosts if strategy == "pp" else 0, elem)
    counted = int(flops.get_total_flops())
    graph = step.graph is not None
    return {
        "strategy": strategy, "p": p, "rank": args.rank, "n": args.width, "layers": args.layers,
        "k": args.ghosts if strategy == "pp" else None, "batch": args.batch, "dtype": args.dtype,
        "device": device.type, "cuda_graph": graph, "step_s": total,
        "fwd_s": None if graph else fwd, "bwd_s": None if graph else bwd,
        "opt_s": None if graph else opt, "matmul_flops": counted,
        "predicted_matmul_flops": predict(strategy, shape).matmul_flops,
        "achieved_flop_rate": counted / total, "ops_per_step": ops.count,
        "peak_memory_bytes": _peak_bytes(device), **energy,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'strategy':8} {'p':>5} {'step ms':>9} {'fwd':>7} {'bwd':>7} {'opt':>7} "
            f"{'GFLOP':>8} {'TFLOP/s':>8} {'ops':>6} {'J/step':>8}")
    lines = [head]
    for r in rows:
        ms = [f"{v * 1e3:7.2f}" if v is not None else "      -" for v in
              (r["fwd_s"], r["bwd_s"], r["opt_s"])]
        energy = f"{r['energy_j_per_step']:8.3f}" if r["energy_j_per_step"] is not None else "       -"
        lines.append(f"{r['strategy']:8} {r['p']:>5} {r['step_s'] * 1e3:9.3f} {' '.join(ms)} "
                     f"{r['matmul_flops'] / 1e9:8.2f} {r['achieved_flop_rate'] / 1e12:8.3f} "
                     f"{r['ops_per_step']:>6} {energy}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" \
        else torch.device("cpu")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="phantom-emulate-") as tmp, \
            EnergyMeter(args.power_source, Path(tmp), args.energy_window_s) as meter:
        for p in args.ranks:
            for strategy in args.strategy:
                if strategy == "serial" and p != args.ranks[0]:
                    continue
                rows.append(measure(strategy, 1 if strategy == "serial" else p, args, device, meter))
        meter.resolve(rows)
    print(f"phantom-emulate: rank {args.rank}'s share of one step, n={args.width} L={args.layers} "
          f"k={args.ghosts} B={args.batch} {args.dtype} on {args.device}"
          f"{' (CUDA graph replay)' if args.cuda_graph else ''}; collectives are local stand-ins")
    print(_table(rows))
    result = {
        "rows": rows,
        "host": {"name": platform.node(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
                 "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "phantom_parallel": __version__},
        "command": ["phantom-emulate", *(sys.argv[1:] if argv is None else argv)],
    }
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
