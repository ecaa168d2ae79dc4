"""The numbers README.md quotes from committed results are recomputed here from those results:
"Results of the reference local run" from docs/reference-local/'s tables, the GPU table of
"At GPU scale" from the H200 check's JSON. Regenerating a result without updating the README,
or editing a README number by hand, fails this test."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference-local"
RERUN = REFERENCE / "rerun-a7ac993"
H200_CHECK = ROOT / "benchmarks" / "results" / "2026-12-04-h200-fused" / "check"


def _section(path: Path, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level, whitespace collapsed."""
    text = path.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return " ".join(text[start:end if end > 0 else None].split())


def _rows(path: Path) -> list[dict[str, str]]:
    """Every row of the CSV file ``path``."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _row(name: str, folder: Path = REFERENCE, **match: str) -> dict[str, str]:
    """The one row of ``folder``/<name> (docs/reference-local/) whose columns equal ``match``."""
    rows = [r for r in _rows(folder / name) if all(r[c] == v for c, v in match.items())]
    assert len(rows) == 1, f"{name}: {len(rows)} rows match {match}"
    return rows[0]


def _ci(row: dict[str, str], column: str, scale: float, fmt: str, unit: str = "") -> str:
    """'<mean><unit> [<low>, <high>]' of ``column`` times ``scale``, numbers written with ``fmt``."""
    mean, low, high = (float(row[f"{column}_{s}"]) * scale for s in ("mean", "ci_low", "ci_high"))
    return f"{mean:{fmt}}{unit} [{low:{fmt}}, {high:{fmt}}]"


STEP = "mean_step_time_s"


def _timed(folder: Path) -> tuple[dict[str, str], ...]:
    """The rows of ``folder``'s run the README quotes timed numbers from: PP and TP n = 512
    training steps, PP's energy saving, PP and TP inference latency."""
    return (_row("table2_summary.csv", folder, strategy="pp", n="512", k="16", pp_init="variance"),
            _row("table2_summary.csv", folder, strategy="tp", n="512"),
            _row("energy_reduction.csv", folder, n="512", k="16", p="2"),
            _row("inference_summary.csv", folder, strategy="pp", n="512", k="16"),
            _row("inference_summary.csv", folder, strategy="tp", n="512"))


def _expected_phrases() -> list[str]:
    pp, tp, energy, infer_pp, infer_tp = _timed(REFERENCE)
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
        f"takes {_ci(pp, STEP, 1e3, '.1f', ' ms per step')}",
        f"against TP's {_ci(tp, STEP, 1e3, '.1f', ' ms')}",
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


def _rerun_phrases() -> list[str]:
    pp, tp, energy, infer_pp, infer_tp = _timed(RERUN)
    return [
        f"took {_ci(pp, STEP, 1e3, '.1f', ' ms per step')} against TP's {_ci(tp, STEP, 1e3, '.1f', ' ms')}",
        _ci(energy, "reduction_pct", 1, ".1f", " % less (modelled) energy"),
        f"batch in {_ci(infer_pp, 'latency_s', 1e3, '.1f', ' ms')} against TP's "
        f"{_ci(infer_tp, 'latency_s', 1e3, '.1f', ' ms')}",
    ]


@pytest.mark.parametrize("phrase", _rerun_phrases())
def test_readme_quotes_the_second_run(phrase):
    section = _section(ROOT / "README.md", "## Results of the reference local run")
    assert phrase in section, f"README.md does not say {phrase!r} (from {RERUN.name}/)"


@pytest.mark.parametrize(("table", "key", "losses"), [
    ("tables/frontier.csv", ("run",), ("val_loss", "test_loss")),
    ("tables/lr_sweep.csv", ("run",), ("val_loss", "mean_val_loss")),
    ("tables/hardness.csv", ("seed",), ("val_loss_full", "val_loss_half")),
    ("tables/same_loss.csv", ("run",), ("final_val_loss", "target_val_loss")),
])
def test_second_run_reproduces_every_loss(table, key, losses):
    """The second run's losses equal the reference run's, run by run, to the last digit (as
    both READMEs say)."""
    ref, again = (_rows(folder / table) for folder in (REFERENCE, RERUN))
    assert len(ref) == len(again) > 0
    by_key = {tuple(r[c] for c in key): r for r in again}
    assert len(by_key) == len(again)
    for r in ref:
        other = by_key[tuple(r[c] for c in key)]
        for column in losses:
            assert r[column] == other[column] != "", (table, column, r[key[0]])


def test_readme_and_reference_readme_name_the_same_run():
    """The run's job count, wall time and revision are written in both READMEs; they agree."""
    readme = _section(ROOT / "README.md", "## Results of the reference local run")
    own = " ".join((REFERENCE / "README.md").read_text().split())
    jobs, minutes = re.search(r"(\d+) jobs, (\d+ min \d+ s) wall time", own).groups()
    revision = re.search(r"at git revision ([0-9a-f]{7})", own).group(1)
    assert f"{jobs} jobs, **{minutes}**" in readme
    assert f"git revision {revision}:" in readme


def _h200(name: str) -> dict[tuple[str, int], dict]:
    """Rows of the committed H200 check's ``name`` JSON by (strategy, p)."""
    rows = json.loads((H200_CHECK / name).read_text())["rows"]
    return {(r["strategy"], r["p"]): r for r in rows}


def test_readme_gpu_table_quotes_the_h200_check():
    """Each row of the "At GPU scale" table: step ms and measured J/step, eager and graph."""
    section = _section(ROOT / "README.md", "### At GPU scale")
    assert H200_CHECK.relative_to(ROOT).as_posix() in section
    eager, graph = _h200("emulate_eager.json"), _h200("emulate_graph.json")
    for p in (8, 64, 256):
        ms = [f"{mode[(s, p)]['step_s'] * 1e3:.2f}" for mode in (eager, graph) for s in ("tp", "pp")]
        joules = [" / ".join(f"{mode[(s, p)]['energy_j_per_step']:.2f}" for s in ("tp", "pp"))
                  for mode in (eager, graph)]
        row = f"| {p} | {' | '.join(ms)} | {' | '.join(joules)} |"
        assert row in section, f"README.md's GPU table has no row {row!r} ({H200_CHECK.name}/*.json)"


@pytest.mark.parametrize(("name", "p", "what", "quoted"), [
    ("emulate_graph.json", 64, "step_s", "0.27x"),
    ("emulate_graph.json", 256, "step_s", "0.54x"),
    ("emulate_eager.json", 64, "step_s", "(1.38x)"),
    ("emulate_eager.json", 256, "step_s", "(1.245x)"),
    ("emulate_eager.json", 64, "energy_j_per_step", "0.43x at p = 64"),
    ("emulate_eager.json", 256, "energy_j_per_step", "0.71x at p = 256"),
])
def test_readme_gpu_ratios_quote_the_h200_check(name, p, what, quoted):
    """The PP/TP ratios the GPU bullets quote, to the digits they are written with."""
    rows = _h200(name)
    ratio = rows[("pp", p)][what] / rows[("tp", p)][what]
    digits = len(re.search(r"\d\.(\d+)x", quoted).group(1))
    assert re.search(r"\d\.\d+x", quoted).group(0) == f"{ratio:.{digits}f}x"
    assert quoted in _section(ROOT / "README.md", "### At GPU scale")


def _range(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def test_readme_performance_table_is_model_accuracy_of_the_committed_runs():
    """Each row of the Performance table: benchmarks/model_accuracy.py's numbers for the
    committed phantom-bench runs of one configuration (p marked oversubscribed past the cores)."""
    runs = ROOT / "benchmarks" / "results" / "2026-12-05g-cpu-bench"
    mod = load_script("benchmarks/model_accuracy.py")
    files = sorted(runs.glob("*.json"))
    rows = [mod.run_row(f) for f in files]
    cores = {json.loads(f.read_text())["env"]["cpu_count"] for f in files}
    assert len(cores) == 1
    section = _section(ROOT / "README.md", "## Performance")
    assert runs.relative_to(ROOT).as_posix() in section
    assert f"{len(files)} runs" in section
    for s in mod.summarise(rows):
        mine = [r for r in rows if (r["width"], r["p"]) == (s["width"], s["p"])]
        met = f"{s['pp_target_met']}/{s['runs']}"
        cells = [
            f"{s['p']} (oversubscribed)" if s["p"] > min(cores) else str(s["p"]),
            str(s["width"]), str(s["ghosts"]), str(s["batch"]), str(s["runs"]),
            f"{s['pp_ms_mean']:.1f}", f"{100 * s['pp_ms_cv']:.1f} %",
            _range([r["pp_over_tp"] for r in mine]), _range([r["tp_over_dtensor"] for r in mine]),
            _range([r["pp_meas_over_pred"] for r in mine]),
            f"**{met}**" if s["pp_target_met"] == s["runs"] else met,
            _range([r["pp_meas_over_pred_micro"] for r in mine]),
        ]
        row = f"| {' | '.join(cells)} |"
        assert row in section, f"README.md's Performance table has no row {row!r}"


@pytest.mark.parametrize(("folder", "name", "quoted"), [
    ("2026-12-05f-cpu-emulate", "emulate_cpu_n8192.json",
     "({} of the FLOP ratio at p = 8, 64, 256 on rank 0"),
    ("2026-12-05c-cpu-emulate", "emulate_cpu_n8192.json", "the widened layer gave {} on"),
])
def test_readme_cpu_emulation_target_quotes_the_committed_runs(folder, name, quoted):
    """Issue 9's CPU target: PP/TP step time over PP/TP matmul FLOPs at p = 8, 64, 256, as
    benchmarks/emulate_targets.py pairs the committed rows (today's layer and the previous)."""
    runs = ROOT / "benchmarks" / "results" / folder
    pairs = load_script("benchmarks/emulate_targets.py").pairs(json.loads((runs / name).read_text())["rows"])
    ratios = {tp["p"]: (pp["step_s"] / tp["step_s"]) / (pp["matmul_flops"] / tp["matmul_flops"])
              for tp, pp in pairs}
    assert sorted(ratios) == [8, 64, 256] and all(r <= 1.25 for r in ratios.values())
    phrase = quoted.format(", ".join(f"{ratios[p]:.2f}x" for p in (8, 64, 256)))
    section = _section(ROOT / "README.md", "### At GPU scale")
    assert phrase in section and runs.relative_to(ROOT).as_posix() in section


def test_readme_init_cost_quotes_the_committed_run():
    """Issue 9's init target: rank-local over whole-layer init time and init's peak memory."""
    runs = ROOT / "benchmarks" / "results" / "2026-12-05d-cpu-init-cost"
    ratios = json.loads((runs / "init_cost.json").read_text())["rank_local_over_whole_layer"]
    phrase = f"({ratios['init_s']:.2f}x and {ratios['init_peak_bytes']:.2f}x;"
    section = _section(ROOT / "README.md", "### At GPU scale")
    assert phrase in section and runs.relative_to(ROOT).as_posix() in section
