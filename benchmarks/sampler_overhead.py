"""Overhead of the power sampler on a CPU-bound loop, measured side by side in one run.

For each source variant, a fixed CPU-bound workload (pure-Python loop, ~1 s) is timed
alternately without and with the sampler running at ``--interval`` (default 0.1 s = 10 Hz),
``--reps`` times; the report gives the median times and the relative slow-down.

Variants (this must run anywhere, so the sensors are fakes of the real interfaces):
- ``rapl``: the RAPL source reading a fake powercap tree (sysfs reads in the sampler process);
- ``rocm-smi``: the command source calling a fake ``rocm-smi`` (a Python script) every poll,
  i.e. one process start per poll, as with the real tool.

    python benchmarks/sampler_overhead.py [--reps 7] [--interval 0.1] [--work 20000000]
"""

from __future__ import annotations

import argparse
import os
import stat
import statistics
import sys
import tempfile
import time
from pathlib import Path

from phantom_parallel.energy.sampler import start_sampler

FAKE_ROCM = """#!{python}
import json
print(json.dumps({{"card0": {{"Average Graphics Package Power (W)": "231.0", "Energy counter": "51234567890123",
 "Accumulated Energy (uJ)": "783888898491100.2"}}}}))
"""


def work(n: int) -> float:
    """CPU-bound workload; returns its wall time (s)."""
    t = time.perf_counter()
    acc = 0
    for i in range(n):
        acc += i * i % 7
    return time.perf_counter() - t


def setup(tmp: Path) -> dict[str, dict]:
    pc = tmp / "powercap" / "intel-rapl:0"
    pc.mkdir(parents=True)
    (pc / "name").write_text("package-0\n")
    (pc / "energy_uj").write_text("123456789\n")
    (pc / "max_energy_range_uj").write_text("262143328850\n")
    bindir = tmp / "bin"
    bindir.mkdir()
    exe = bindir / "rocm-smi"
    exe.write_text(FAKE_ROCM.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    return {
        "rapl": {"source": "rapl", "powercap_root": str(tmp / "powercap")},
        "rocm-smi": {"source": "rocm-smi"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--work", type=int, default=20_000_000)
    args = ap.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, interval {args.interval} s, reps {args.reps}"
    )
    with tempfile.TemporaryDirectory() as d:
        variants = setup(Path(d))
        work(args.work // 4)  # warm-up
        for name, kw in variants.items():
            off, on, polls = [], [], 0
            for rep in range(args.reps):
                off.append(work(args.work))
                h = start_sampler(
                    out_dir=Path(d) / f"power-{name}-{rep}",
                    interval_s=args.interval,
                    host="bench",
                    **kw,
                )
                time.sleep(0.3)  # sampler running before timing starts
                on.append(work(args.work))
                h.stop()
                assert h.log_path is not None
                polls += sum(1 for line in h.log_path.read_text().splitlines() if line[:1] in "#1")
            m_off, m_on = statistics.median(off), statistics.median(on)
            print(
                f"{name:9s} without {m_off:.4f} s  with {m_on:.4f} s  overhead {100 * (m_on / m_off - 1):+.2f} %"
                f"  (min {min(off):.4f} / {min(on):.4f} s; {polls} polls written)"
            )


if __name__ == "__main__":
    main()
