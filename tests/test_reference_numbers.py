"""Every number that README.md's "Results of the reference local run" quotes is recomputed here
from the committed tables of that run (docs/reference-local/): regenerating the reference
without updating the README, or editing a README number by hand, fails this test."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference-local"


def _section(path: Path, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level, whitespace collapsed."""
    text = path.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return " ".join(text[start:end if end > 0 else None].split())


def _row(name: str, **match: str) -> dict[str, str]:
    """The one row of docs/reference-local/<name> whose columns equal ``match``."""
    with open(REFERENCE / name, newline="") as f:
        rows = [r for r in csv.DictReader(f) if all(r[c] == v for c, v in match.items())]
    assert len(rows) == 1, f"{name}: {len(rows)} rows match {match}"
    return rows[0]


def _ci(row: dict[str, str], column: str, scale: float, fmt: str, unit: str = "") -> str:
    """'<mean><unit> [<low>, <high>]' of ``column`` times ``scale``, numbers written with ``fmt``."""
    mean, low, high = (float(row[f"{column}_{s}"]) * scale for s in ("mean", "ci_low", "ci_high"))
    return f"{mean:{fmt}}{unit} [{low:{fmt}}, {high:{fmt}}]"


def _expected_phrases() -> list[str]:
    step = "mean_step_time_s"
    pp = _row("table2_summary.csv", strategy="pp", n="512", k="16", pp_init="variance")
    tp = _row("table2_summary.csv", strategy="tp", n="512")
    energy = _row("energy_reduction.csv", n="512", k="16", p="2")
    infer_pp = _row("inference_summary.csv", strategy="pp", n="512", k="16")
    infer_tp = _row("inference_summary.csv", strategy="tp", n="512")
    hardness = _row("tables/hardness.csv", seed="0")
    fan_in = _row("init_ablation.csv", pp_init="fan-in")
    variance = _row("init_ablation.csv", pp_init="variance")
    paired = _row("init_ablation.csv", pp_init="variance - fan-in (paired)")
    front = {k: _row("frontier_summary.csv", strategy="pp", k=k) for k in ("4", "16", "64", "256")}
    serial = _row("frontier_summary.csv", strategy="serial", n="512")
    reference = _row("same_loss_summary.csv", role="reference (sets the target; not judged)")
    judged_pp = _row("same_loss_summary.csv", strategy="pp")
    judged_tp = _row("same_loss_summary.csv", strategy="tp", n="512")
    gemm = _row("calibration.csv", constant="gemm_efficiency")
    host_op = _row("calibration.csv", constant="host_op_s")
    test = {k: float(r["test_loss_mean"]) for k, r in front.items()}
    return [
        f"ends {_ci(hardness, 'rel_gap', 100, '.1f', ' % worse')}",
        f"takes {_ci(pp, step, 1e3, '.1f', ' ms per step')}",
        f"against TP's {_ci(tp, step, 1e3, '.1f', ' ms')}",
        _ci(energy, "reduction_pct", 1, ".1f", " % less (modelled) energy"),
        f"1,024 in {_ci(infer_pp, 'latency_s', 1e3, '.1f', ' ms')}",
        f"against TP's {_ci(infer_tp, 'latency_s', 1e3, '.1f', ' ms')}",
        f"validation MSE {float(variance['final_val_loss_mean']):.4f} against "
        f"{float(fan_in['final_val_loss_mean']):.4f}",
        f"difference {_ci(paired, 'final_val_loss', 1, '.4f')} paired",
        f"k = 16 gives the lowest PP test MSE, {test['16']:.4f}; k = 4 {test['4']:.4f}, "
        f"k = 64 {test['64']:.4f}, k = 256 {test['256']:.4f}",
        f"validation MSE {float(reference['target_val_loss']):.4f} = the reference TP n = 1,024 p = 2 "
        f"mean final loss {float(reference['final_val_loss_mean']):.4f} x 1.02",
        f"step {float(reference['step_at_target_mean']):.0f} of 384, "
        f"{float(reference['energy_j_at_target_mean']):,.0f} J",
        f"never reaches it (final {float(judged_pp['final_val_loss_mean']):.4f})",
        f"TP n = 512 (final {float(judged_tp['final_val_loss_mean']):.4f})",
        f"higher test MSE ({_ci(front['16'], 'test_loss', 1, '.4f')} vs "
        f"{float(serial['test_loss_mean']):.4f}",
        f"serial n = 512 ({float(serial['energy_j_mean']):,.0f} J) costs less than PP p = 2 "
        f"({float(front['16']['energy_j_mean']):,.0f} J)",
        f"median error of {float(gemm['median_abs_rel_err_held_out']) * 100:.1f} %",
        f"`gemm_efficiency` of {float(gemm['fitted_value']):.2f}",
        f"`host_op_s`, {float(host_op['fitted_value']):.1e} s per operator".replace("e-05", "e-5"),
        f"predicts the {int(gemm['runs_held_out'])} held-out runs",
    ]


@pytest.mark.parametrize("phrase", _expected_phrases())
def test_readme_quotes_the_reference_tables(phrase):
    section = _section(ROOT / "README.md", "## Results of the reference local run")
    assert phrase in section, f"README.md does not say {phrase!r} (from docs/reference-local/)"


def test_readme_and_reference_readme_name_the_same_run():
    """The run's job count, wall time and revision are written in both READMEs; they agree."""
    readme = _section(ROOT / "README.md", "## Results of the reference local run")
    own = " ".join((REFERENCE / "README.md").read_text().split())
    jobs, minutes = re.search(r"(\d+) jobs, (\d+ min \d+ s) wall time", own).groups()
    revision = re.search(r"at git revision ([0-9a-f]{7})", own).group(1)
    assert f"{jobs} jobs, **{minutes}**" in readme
    assert f"git revision {revision}:" in readme
