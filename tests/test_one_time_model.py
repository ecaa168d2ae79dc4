"""One time model: step time and energy are modelled only by ``phantom_parallel.timing`` (on a
hardware profile, collectives from ``phantom_parallel.collectives``), for the projection, the
validation scripts and ``phantom-bench`` alike. A second prediction path (the old alpha-beta
model or its re-calibration back anywhere, a module, notebook, workflow script or benchmark
that defines its own step-time function, or the old functions back in ``costs``) fails here."""

from __future__ import annotations

import re
from pathlib import Path

from phantom_parallel import costs

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [*ROOT.glob("src/phantom_parallel/**/*.py"), *ROOT.glob("notebooks/*.ipynb"),
           *ROOT.glob("notebooks/*.py"), *ROOT.glob("workflow/**/*.py"),
           *ROOT.glob("workflow/**/*.smk"), *ROOT.glob("benchmarks/**/*.py"), ROOT / "Snakefile"]
TIME_FUNCTIONS = {"step_time": "src/phantom_parallel/timing.py",
                  "wall_s": "src/phantom_parallel/timing.py",
                  "gemm_s": "src/phantom_parallel/timing.py",
                  "collective_s": "src/phantom_parallel/collectives.py",
                  "project": "src/phantom_parallel/projection.py"}
"""Each function of the time model and its one home."""


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def test_costs_has_counts_only() -> None:
    for name in ("predict_time", "AlphaBeta", "calibrate", "recalibrate", "project",
                 "TimeBreakdown"):
        assert not hasattr(costs, name), f"costs.{name} is back: time is timing's job"


def test_the_old_alpha_beta_model_is_gone() -> None:
    pattern = re.compile(r"\b(alphabeta|AlphaBeta|predict_time|recalibrate|calibrate_matmul|"
                         r"calibrate_collectives|calibrate_optimizer|TimeBreakdown)\b")
    users = {_rel(p) for p in SCANNED if pattern.search(p.read_text(errors="replace"))}
    assert not users, f"a second time model is used in {sorted(users)}"


def test_the_benchmark_predicts_with_the_time_model() -> None:
    text = (ROOT / "src/phantom_parallel/bench_analysis.py").read_text()
    assert "from phantom_parallel.timing import" in text and "step_time(" in text


def test_time_functions_are_defined_once() -> None:
    for name, home in TIME_FUNCTIONS.items():
        pattern = re.compile(rf"^\s*def {name}\(", re.M)
        homes = {_rel(p) for p in SCANNED if p.suffix == ".py" and pattern.search(p.read_text())}
        assert homes == {home}, (name, homes)
