"""``phantom-emulate``: rank r's share of a p-rank training step, on one device.

Builds rank ``--rank``'s shard (default 0; every rank of a strategy does the same work) of the
serial, TP or PP model exactly as ``phantom-train`` would at world size p, with every collective replaced by a local stand-in of the same output shape
and comparable memory traffic (:class:`StandInComm`), and times forward + MSE + backward + Adam.
What is measured is the rank's computation, kernel launches and memory traffic, with no peer
to wait for: the communication itself is what :mod:`phantom_parallel.costs` models.

Timing: CUDA events per phase (no host sync inside a step; one at the end), host clock on
CPU; medians over ``--steps`` after ``--warmup``. ``host_s``: the host's time to issue one
step to an idle device (:func:`~phantom_parallel.emulate_step.host_dispatch_s`; on CPU the
step itself), which says whether an eager accelerator step is bound by its dispatch.
``--cuda-graph`` captures the whole step once and replays it (phases are then not
separable). Energy per step comes from the project's own sampler
(:mod:`phantom_parallel.energy`) over a window of back-to-back steps when a sensor exists, and
is null otherwise (never modelled).

Example::

    phantom-emulate --strategy tp pp --width 8192 --layers 2 --ghosts 16 --batch 256 \\
        --ranks 8 64 256 --json emulate.json

``--json`` is rewritten after each p of ``--ranks`` with the rows so far (``"complete":
false``; their energy integrated once the sampler's log reaches past them), so a run that is
stopped (a time limit on a lent GPU) keeps the p it measured; the same command with
``--resume`` keeps them and measures the rest (:mod:`phantom_parallel.emulate_resume`). The
finished run's document says ``"complete": true``.

``--gemm-table PATH`` also times every GEMM shape of those steps on the device and writes
them as a hardware profile's ``gemm_table`` (:mod:`phantom_parallel.emulate_gemms`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import torch

from phantom_parallel import __version__, cli, emulate_gemms, emulate_resume
from phantom_parallel.emulate_comm import CountOps, StandInComm
from phantom_parallel.emulate_energy import EnergyMeter
from phantom_parallel.emulate_step import Step, measure, measure_rounds, round_ratios
from phantom_parallel.energy.sources import POWER_SOURCES, source_error
from phantom_parallel.models import STRATEGIES, validate_layout
from phantom_parallel.train_args import DTYPES
from phantom_parallel.train_record import cpu_model

# CountOps, StandInComm, Step and measure are re-exported: tests and benchmarks import them
# from phantom_parallel.emulate.
__all__ = ["EMULATED", "POWER_SOURCES", "CountOps", "StandInComm", "Step", "main", "measure",
           "parse_args", "validate"]

EMULATED = tuple(s for s in STRATEGIES if s not in ("dtensor", "fsdp"))  # need a real group


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = cli.parser("phantom-emulate", __doc__)
    ap.add_argument("--strategy", nargs="+", default=["tp", "pp"], help=f"of {', '.join(EMULATED)}")
    ap.add_argument("--width", type=int, required=True, help="hidden width n")
    ap.add_argument("--layers", type=int, default=4, help="hidden n x n layers L")
    ap.add_argument("--ghosts", type=int, default=32, help="ghosts k per rank (pp)")
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=1024,
                    help="batch size B (samples per step), as phantom-train's --batch-size")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8], help="world sizes p to emulate")
    ap.add_argument("--rank", type=int, default=0,
                    help="the rank r whose share is run (every rank does the same work)")
    ap.add_argument("--d-in", type=int, default=64, help="input features")
    ap.add_argument("--d-out", type=int, default=8, help="output features")
    ap.add_argument("--dtype", default="float32", help=f"of {', '.join(DTYPES)}")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=1,
                    help="> 1: time the strategies side by side, --steps split into this many "
                         "interleaved rounds (order reversed every other round); prints each "
                         "strategy's step time over TP's, round by round")
    ap.add_argument("--cuda-graph", action="store_true", help="capture the step, time replays")
    ap.add_argument("--power-source", default="auto", help=f"of {', '.join(POWER_SOURCES)}")
    ap.add_argument("--energy-window-s", type=float, default=2.0,
                    help="seconds of back-to-back steps per energy reading")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--json", type=Path, default=None,
                    help="write the rows here (into an existing folder; an existing file is "
                         "replaced, atomically)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the p an earlier, stopped run of the same options wrote to "
                         "--json and measure the rest (emulate_resume)")
    ap.add_argument("--gemm-table", type=Path, default=None,
                    help="also time each GEMM shape of these steps; write them here (YAML) as "
                         "a hardware profile's gemm_table (as --json: existing folder, atomic)")
    return ap.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """One-line errors naming the flag and value, before anything runs or is written."""
    def bad(msg: str) -> NoReturn:
        cli.refuse("phantom-emulate", msg)

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
    msg = (cli.minimum_error({"--width": args.width, "--batch-size": args.batch,
                              "--steps": args.steps, "--d-in": args.d_in, "--d-out": args.d_out,
                              "--threads": args.threads, "--rounds": args.rounds}, 1)
           or cli.minimum_error({"--layers": args.layers, "--warmup": args.warmup}, 0)
           or cli.minimum_error({"--energy-window-s": args.energy_window_s}, 0, strict=True))
    if msg:
        bad(msg)
    if args.rounds > args.steps:
        bad(f"--rounds {args.rounds}: must be between 1 and --steps ({args.steps})")
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
    if args.resume and args.json is None:
        bad("--resume needs --json (the file of the run to resume)")
    if not args.resume and (done := emulate_resume.stopped_ranks(args.json)):
        bad(f"--json {args.json} holds a stopped run (p = {', '.join(map(str, done))} measured): "
            "add --resume to keep it and measure the rest, or remove the file to start again")
    if None not in (args.json, args.gemm_table) and args.json.resolve() == args.gemm_table.resolve():
        bad(f"--json and --gemm-table name the same file {args.json}")
    msg = (cli.output_error("--json", args.json) or cli.output_error("--gemm-table", args.gemm_table)
           or source_error(args.power_source))
    if msg:
        bad(msg)


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'strategy':8} {'p':>5} {'step ms':>9} {'host ms':>8} {'fwd':>7} {'bwd':>7} {'opt':>7} "
            f"{'GFLOP':>8} {'TFLOP/s':>8} {'ops':>6} {'J/step':>8}")
    lines = [head]
    for r in rows:
        ms = [f"{v * 1e3:7.2f}" if v is not None else "      -" for v in
              (r["fwd_s"], r["bwd_s"], r["opt_s"])]
        energy = f"{r['energy_j_per_step']:8.3f}" if r["energy_j_per_step"] is not None else "       -"
        lines.append(f"{r['strategy']:8} {r['p']:>5} {r['step_s'] * 1e3:9.3f} "
                     f"{r['host_s'] * 1e3:8.3f} {' '.join(ms)} "
                     f"{r['matmul_flops'] / 1e9:8.2f} {r['achieved_flop_rate'] / 1e12:8.3f} "
                     f"{r['ops_per_step']:>6} {energy}")
    return "\n".join(lines)


def _host(device: torch.device) -> dict[str, Any]:
    return {"name": platform.node(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def _versions() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "phantom_parallel": __version__}


def _document(args: argparse.Namespace, argv: list[str] | None, device: torch.device,
              done: dict[int, list[dict[str, Any]]], complete: bool) -> dict[str, Any]:
    """The ``--json`` document of the p measured so far (``done``: p -> rows): ``rows`` (in
    ``--ranks`` order), ``round_ratios``, ``complete`` (False while ``--ranks`` are still
    being measured), ``ranks_done``, ``options`` (:func:`emulate_resume.options`), ``host``,
    ``versions`` and ``command``."""
    order = [p for p, _ in emulate_resume.groups(args) if p in done]
    rows = [r for p in order for r in done[p]]
    return {
        "rows": rows,
        "round_ratios": round_ratios(rows) if args.rounds > 1 else [],
        "complete": complete,
        "ranks_done": order,
        "options": emulate_resume.options(args),
        "host": _host(device),
        "versions": _versions(),
        "command": ["phantom-emulate", *(sys.argv[1:] if argv is None else argv)],
    }


def _write_json(args: argparse.Namespace, result: dict[str, Any]) -> str | None:
    return args.json and cli.write_output("--json", args.json, json.dumps(result, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" \
        else torch.device("cpu")
    done: dict[int, list[dict[str, Any]]] = {}
    if args.resume:
        done, err = emulate_resume.kept(args, _host(device), _versions())
        if err:
            cli.refuse("phantom-emulate", err)
        if done:
            print(f"phantom-emulate: --resume keeps p = {', '.join(map(str, done))} of {args.json}")
    fresh: list[dict[str, Any]] = []  # rows this run measures, in the energy meter's order
    with tempfile.TemporaryDirectory(prefix="phantom-emulate-") as tmp, \
            EnergyMeter(args.power_source, Path(tmp), args.energy_window_s) as meter:
        todo = [(p, here) for p, here in emulate_resume.groups(args) if p not in done]
        for p, here in todo:
            if args.rounds > 1:
                done[p] = measure_rounds(here, p, args, device, meter)
            else:
                done[p] = [measure(s, 1 if s == "serial" else p, args, device, meter) for s in here]
            fresh += done[p]
            if p == todo[-1][0]:  # the finished document follows
                break
            # a stopped run keeps every p measured so far, energy included (--resume goes on)
            meter.settle(fresh)
            if err := _write_json(args, _document(args, argv, device, done, False)):
                print(f"phantom-emulate: warning: {err}", file=sys.stderr)
        meter.resolve(fresh)
    result = _document(args, argv, device, done, True)
    rows = result["rows"]
    print(f"phantom-emulate: rank {args.rank}'s share of one step, n={args.width} L={args.layers} "
          f"k={args.ghosts} B={args.batch} {args.dtype} on {args.device}"
          f"{' (CUDA graph replay)' if args.cuda_graph else ''}; collectives are local stand-ins")
    print(_table(rows))
    for q in result["round_ratios"]:
        print(f"p={q['p']}: {q['strategy']}/{q['vs']} step time {q['median']:.3f} (median of "
              f"{q['rounds']} interleaved rounds; {q['min']:.3f}-{q['max']:.3f})")
    if failed := _write_json(args, result):
        print(f"phantom-emulate: error: {failed}", file=sys.stderr)
    if args.gemm_table is not None:
        gemms = emulate_gemms.measure(emulate_gemms.shapes(args.strategy, args.ranks, args),
                                      args.dtype, device)
        text = emulate_gemms.table(gemms, emulate_gemms.source(device, result["command"]))
        if err := cli.write_output("--gemm-table", args.gemm_table, text):
            print(f"phantom-emulate: error: {err}", file=sys.stderr)
            return 1
        print(f"phantom-emulate: {len(gemms)} GEMM shapes timed -> {args.gemm_table}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
