"""One time model: step time and energy are modelled only by ``phantom_parallel.timing`` (on a
hardware profile); the legacy alpha-beta constants of ``phantom-bench`` live in
``phantom_parallel.alphabeta`` and nothing but the benchmark may use them. A second prediction
path (a new module, notebook, workflow script or benchmark that times steps another way, or
the old functions back in ``costs``) fails here."""

from __future__ import annotations

import re
from pathlib import Path

from phantom_parallel import costs

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [*ROOT.glob("src/phantom_parallel/**/*.py"), *ROOT.glob("notebooks/*.ipynb"),
           *ROOT.glob("notebooks/*.py"), *ROOT.glob("workflow/**/*.py"),
           *ROOT.glob("workflow/**/*.smk"), *ROOT.glob("benchmarks/**/*.py"), ROOT / "Snakefile"]
LEGACY_USERS = {"src/phantom_parallel/alphabeta.py", "src/phantom_parallel/bench.py",
                "src/phantom_parallel/bench_report.py"}
"""The legacy model and its one remaining user (to be moved onto timing: see issue 12)."""
TIME_FUNCTIONS = {"step_time": "src/phantom_parallel/timing.py",
                  "predict_time": "src/phantom_parallel/alphabeta.py",
                  "project": "src/phantom_parallel/projection.py"}


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def test_costs_has_counts_only() -> None:
    for name in ("predict_time", "AlphaBeta", "calibrate", "recalibrate", "project",
                 "TimeBreakdown"):
        assert not hasattr(costs, name), f"costs.{name} is back: time is timing's job"


def test_legacy_alpha_beta_only_in_the_benchmark() -> None:
    pattern = re.compile(r"\b(alphabeta|AlphaBeta|predict_time|recalibrate)\b")
    users = {_rel(p) for p in SCANNED if pattern.search(p.read_text(errors="replace"))}
    assert users <= LEGACY_USERS, f"second time model used in {sorted(users - LEGACY_USERS)}"


def test_time_functions_are_defined_once() -> None:
    for name, home in TIME_FUNCTIONS.items():
        pattern = re.compile(rf"^\s*def {name}\(", re.M)
        homes = {_rel(p) for p in SCANNED if p.suffix == ".py" and pattern.search(p.read_text())}
        assert homes == {home}, (name, homes)
