"""``phantom-data generate|verify|info``: the command line of :mod:`phantom_parallel.data`.

Exit status: 0 done; 2 bad input, refused in one line before anything is written (a flag, the
folder, an unreadable manifest or progress file, a dataset of another configuration); 1 the
work failed (``verify`` found a missing or corrupt shard, a write failed)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from phantom_parallel import cli
from phantom_parallel.data.config import ACTIVATIONS, DataConfig
from phantom_parallel.data.dataset import load_manifest, verify
from phantom_parallel.data.shards import generate


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``phantom-data``."""
    ap = cli.parser("phantom-data", __doc__.split("\n\n")[0])
    ap.epilog = __doc__.split("\n\n")[1].replace("\n", " ").replace("``", "")
    sub = ap.add_subparsers(dest="command", required=True)
    d = DataConfig()
    g = sub.add_parser("generate", formatter_class=ap.formatter_class, help="generate (or resume) a dataset folder")
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--d-in", type=int, default=d.d_in)
    g.add_argument("--d-out", type=int, default=d.d_out)
    g.add_argument("--teacher-width", type=int, default=d.teacher_width)
    g.add_argument("--teacher-layers", type=int, default=d.teacher_layers)
    g.add_argument("--activation", choices=ACTIVATIONS, default=d.activation)
    g.add_argument("--teacher-gain", type=float, default=d.teacher_gain)
    g.add_argument("--teacher-rank", type=int, default=d.teacher_rank,
                   help="rank of the first layer, <= min(--d-in, --teacher-width); 0 = full rank")
    g.add_argument("--n-train", type=int, default=d.n_train)
    g.add_argument("--n-val", type=int, default=d.n_val)
    g.add_argument("--n-test", type=int, default=None,
                   help="rows of the held-out test split (default: --n-val; 0: none)")
    g.add_argument("--shard-rows", type=int, default=d.shard_rows)
    g.add_argument("--noise", type=float, default=d.noise)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default="cpu",
                   help="where the teacher's float64 forward pass runs: cpu (the reference), "
                   "cuda or cuda:N (targets equal the CPU's up to one quantum, docs/method.md)")
    g.add_argument("--overwrite", action="store_true", help="replace a different dataset")
    g.add_argument("--quiet", action="store_true")
    v = sub.add_parser("verify", formatter_class=ap.formatter_class, help="check every shard's sha256 against the manifest")
    v.add_argument("dir", type=Path)
    i = sub.add_parser("info", formatter_class=ap.formatter_class, help="print the manifest summary")
    i.add_argument("dir", type=Path)
    return ap


def _config(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` of ``generate``'s flags; ValueError naming the bad flag."""
    try:
        return DataConfig(
            d_in=args.d_in,
            d_out=args.d_out,
            teacher_width=args.teacher_width,
            teacher_layers=args.teacher_layers,
            activation=args.activation,
            teacher_gain=args.teacher_gain,
            teacher_rank=args.teacher_rank,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            shard_rows=args.shard_rows,
            noise=args.noise,
            seed=args.seed,
        )
    except ValueError as exc:  # DataConfig.n_train=0 ... -> --n-train=0 ...
        flag = re.sub(r"DataConfig\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))
        raise ValueError(flag) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-data`` entry point."""
    args = build_parser().parse_args(argv)
    status = 2  # bad input: refused before any work (argparse's status)
    try:
        if args.command == "generate":
            cfg = _config(args)
            t0 = time.perf_counter()
            try:  # its ValueErrors are refusals before anything is written
                m = generate(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet,
                             device=args.device)
            except OSError:
                status = 1
                raise
            n = sum(len(s["shards"]) for s in m["splits"].values())
            print(
                f"{args.out}: train {m['splits']['train']['rows']} rows, "
                f"val {m['splits']['val']['rows']} rows, "
                f"test {m['splits']['test']['rows']} rows, {n} shards "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        elif args.command == "verify":
            load_manifest(args.dir)
            status = 1  # from here on the check failed: a shard is missing or corrupt
            r = verify(args.dir)
            print(f"{args.dir}: OK ({r['files']} files, {r['bytes']} bytes, rows {r['rows']})")
        else:
            m = load_manifest(args.dir)
            summary = {k: m.get(k) for k in ("format", "d_in", "d_out", "seed", "noise", "dtype")}
            teacher = m.get("teacher")
            summary["teacher"] = {
                k: v for k, v in (teacher if isinstance(teacher, dict) else {}).items()
                if k not in ("output_mean", "output_std")
            }
            summary["rows"] = {s: v["rows"] for s, v in m["splits"].items()}
            summary["shards"] = {s: len(v["shards"]) for s, v in m["splits"].items()}
            print(json.dumps(summary, indent=2))
    except (OSError, ValueError) as exc:
        print(f"phantom-data: error: {exc}", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
