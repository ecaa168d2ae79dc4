"""Does a CPU rank compute slower right after a gloo collective? One emulated step, timed after
0, 1 or more all-reduces, on two gloo ranks.

Why: a two-rank CPU training step spends 20-30 % more time outside its collectives than the
same rank's step run alone (``phantom-emulate``), and the local calibration's ``host_op_s``
absorbs it. This separates that cost from the step's own work: each of two gloo ranks (two
processes, one thread each) builds its emulated step (``phantom-emulate``'s
:class:`~phantom_parallel.emulate_step.Step` for its own rank, every collective a local
stand-in, so the step itself never waits on a peer), then runs
``--rounds`` rounds; in each round, for every count c in ``--collectives`` (order reversed
every other round), a block of ``--block`` steps, each after c all-reduces of ``--numel``
floats with its peer (the block's first 2 steps untimed: what came before the block does not
count), timed by the host clock together with the main thread's CPU time in the step
(``time.thread_time``: equal to the wall time unless the thread was descheduled), and whether
the thread ended the step on another CPU than the one it ended the previous step on (a
migration, read from ``/proc/thread-self/stat`` outside the timed window). ``--pin`` binds each
rank's process, gloo's threads included, to one core (rank r to the r-th core it may use)
before gloo starts.
Rank 0 prints the median step per count and its ratio to the step after none, the share of
steps that migrated, and what one all-reduce costs the process (wall, user and system CPU
time, context switches per call); ``--json`` writes them.

    python benchmarks/compute_after_collectives.py --strategy tp --width 512 --batch 64 \\
        --collectives 0 1 5 --numel 16 32768 --rounds 10 --block 20 [--pin] --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from phantom_parallel.emulate_step import Step
from phantom_parallel.layout import validate_layout

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> int:
    """The CPU this thread last ran on (field 39 of /proc/thread-self/stat)."""
    return int(Path("/proc/thread-self/stat").read_text().rsplit(")", 1)[1].split()[36])


def _rank(rank: int, port: int, args: argparse.Namespace, out: mp.SimpleQueue) -> None:
    """One gloo rank: ``{(numel, count): (median step s, median thread CPU s, share of steps
    that migrated)}`` to ``out``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if args.pin:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[rank % len(allowed)]})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    step = Step(args.strategy, WORLD, argparse.Namespace(
        **vars(args), rank=rank, dtype="float32", cuda_graph=False), torch.device("cpu")).run
    for _ in range(args.warmup):
        step()
    samples: dict[tuple[int, int], list[tuple[float, float, bool]]] = {}
    for numel in args.numel:
        buf = torch.ones(numel)
        for r in range(args.rounds):
            for count in (args.collectives if r % 2 == 0 else args.collectives[::-1]):
                for i in range(args.block + 2):
                    where = _cpu()
                    for _ in range(count):
                        dist.all_reduce(buf)
                    wall, cpu = time.perf_counter(), time.thread_time()
                    step()
                    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                    if i >= 2:
                        samples.setdefault((numel, count), []).append((wall, cpu, _cpu() != where))
    costs = {numel: _all_reduce_cost(numel, 200) for numel in args.numel}
    dist.barrier()
    dist.destroy_process_group()
    out.put((rank, ({key: (statistics.median(w for w, _, _ in v),
                           statistics.median(c for _, c, _ in v),
                           statistics.fmean(moved for _, _, moved in v))
                     for key, v in samples.items()}, costs)))


def _all_reduce_cost(numel: int, calls: int) -> dict[str, float]:
    """What one all-reduce of ``numel`` floats costs this process (all its threads): wall,
    user and system CPU seconds and context switches per call (``getrusage``)."""
    buf = torch.ones(numel)
    for _ in range(10):
        dist.all_reduce(buf)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        dist.all_reduce(buf)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return {"wall_s": (t1 - t0) / calls, "user_s": (r1.ru_utime - r0.ru_utime) / calls,
            "sys_s": (r1.ru_stime - r0.ru_stime) / calls,
            "voluntary_switches": (r1.ru_nvcsw - r0.ru_nvcsw) / calls,
            "involuntary_switches": (r1.ru_nivcsw - r0.ru_nivcsw) / calls}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategy", default="tp", choices=("tp", "pp"))
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ghosts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--d-out", type=int, default=8)
    ap.add_argument("--collectives", type=int, nargs="+", default=[0, 1, 5],
                    help="all-reduces before each timed step (the first is the baseline)")
    ap.add_argument("--numel", type=int, nargs="+", default=[16, 32768],
                    help="floats per all-reduce")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=20, help="timed steps per count per round")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--pin", action="store_true",
                    help="bind rank r's process (all its threads) to the r-th allowed core")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if min(args.collectives) < 0 or min(args.numel) < 1 or min(args.rounds, args.block) < 1:
        ap.error("--collectives >= 0, --numel >= 1, --rounds >= 1 and --block >= 1")
    if args.json is not None and not args.json.parent.is_dir():
        ap.error(f"--json {args.json}: folder {args.json.parent} does not exist")
    try:
        validate_layout(args.strategy, args.width, WORLD, args.ghosts)
    except ValueError as err:
        ap.error(f"--strategy/--width/--ghosts: {err}")
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, args, queue)) for r in range(WORLD)]
    for proc in procs:
        proc.start()
    results: dict = {}
    while len(results) < WORLD:  # a rank that dies puts nothing: do not wait for it forever
        if not queue.empty():
            results.update([queue.get()])
        elif any(p.exitcode not in (None, 0) for p in procs):
            for proc in procs:
                proc.terminate()
            print("compute_after_collectives: a rank failed (its error is above)", file=sys.stderr)
            return 1
        else:
            time.sleep(0.05)
    for proc in procs:
        proc.join()
    steps, costs = results[0]
    rows = []
    for (numel, count), (wall, cpu, moved) in sorted(steps.items()):
        base = steps[(numel, args.collectives[0])][0]
        rows.append({"numel": numel, "collectives_before": count, "step_s": wall,
                     "thread_cpu_s": cpu, "vs_baseline": wall / base, "migrated": moved})
    print(f"{args.strategy} n={args.width} L={args.layers} B={args.batch}, emulated step on "
          f"rank 0 of {WORLD} gloo ranks{' pinned to a core each' if args.pin else ''}, median of "
          f"{args.rounds} x {args.block} steps per row:")
    print(f"{'floats':>8} {'all-reduces':>11} {'step ms':>8} {'CPU ms':>7} {'x base':>7} "
          f"{'migrated':>8}")
    for r in rows:
        print(f"{r['numel']:>8} {r['collectives_before']:>11} {r['step_s'] * 1e3:8.2f} "
              f"{r['thread_cpu_s'] * 1e3:7.2f} {r['vs_baseline']:7.2f} {r['migrated']:8.0%}")
    print("one all-reduce, this process (all threads), per call:")
    for numel, c in costs.items():
        print(f"{numel:>8} floats: wall {c['wall_s'] * 1e6:.0f} us, CPU user {c['user_s'] * 1e6:.0f} us "
              f"+ system {c['sys_s'] * 1e6:.0f} us, context switches {c['voluntary_switches']:.1f} "
              f"voluntary / {c['involuntary_switches']:.1f} involuntary")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "all_reduce_cost": costs,
                                         "args": vars(args) | {"json": str(args.json)},
                                         "command": sys.argv, "torch": torch.__version__},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
