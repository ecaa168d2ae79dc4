"""Config validation, profile resolution and job geometry (dry runs only; fast)."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, copy_workflow, snakemake


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def _overlay(wf: Path, name: str, data: dict) -> str:
    path = wf / name
    path.write_text(yaml.safe_dump(data))
    return name


def _fails_before_any_job(wf: Path, args: list[str], *needles: str) -> str:
    res = snakemake(["--profile", "local", "--cores", "1", *args], wf, timeout=120)
    assert res.returncode != 0, res.stdout
    for needle in needles:
        assert needle in res.stdout, f"{needle!r} not in:\n{res.stdout}"
    assert not (wf / "results").exists(), "a job started although the config is invalid"
    return res.stdout


def test_unknown_top_level_key_is_named(wf):
    _fails_before_any_job(wf, ["--config", "scael=smoke"], "scael")


def test_unknown_nested_key_is_named(wf):
    name = _overlay(wf, "bad-nested.yaml", {"scales": {"smoke": {"training": {"optimiser": "adam"}}}})
    _fails_before_any_job(wf, ["--configfile", name, "--config", "scale=smoke"], "optimiser")


def test_bad_value_names_key_and_value(wf):
    name = _overlay(wf, "bad-value.yaml", {"execution": {"launcher": "mpirun"}})
    out = _fails_before_any_job(wf, ["--configfile", name], "mpirun")
    assert "launcher" in out


@pytest.mark.parametrize(("overlay", "key", "value"), [
    ({"scales": {"smoke": {"training": {"dtype": "float16"}}}}, "'dtype'", "float16"),
    ({"scales": {"smoke": {"scaling": {"strategies": ["pp", "serial"]}}}}, "'strategies'", "serial"),
    ({"execution": {"power_source": "nvml2"}}, "'power_source'", "nvml2"),
])
def test_enums_from_phantom_parallel_constants_name_key_and_value(wf, overlay, key, value):
    """The schema's enums of dtypes, strategies and power sources are filled from
    phantom_parallel.constants by common.smk; a value outside them is refused by name."""
    name = _overlay(wf, f"bad-{value}.yaml", overlay)
    _fails_before_any_job(wf, ["--configfile", name, "--config", "scale=smoke"], key, value,
                          "is not one of")


def test_unknown_scale_is_named(wf):
    _fails_before_any_job(wf, ["--config", "scale=huge"], "config key 'scale'", "huge")


def test_semantic_check_names_key(wf):
    name = _overlay(wf, "bad-ranks.yaml", {"scales": {"smoke": {"scaling": {"ranks": [3]}}}})
    _fails_before_any_job(
        wf, ["--configfile", name, "--config", "scale=smoke"],
        "config key 'scales.smoke.scaling'", "not divisible",
    )


def test_layout_check_is_the_trainers_and_names_the_ghost_key(wf):
    """k > m = n/p is refused by phantom_parallel.layout.validate_layout (its message), naming
    the config key of the ghosts."""
    name = _overlay(wf, "bad-ghosts.yaml", {"scales": {"smoke": {"scaling": {"ghosts": [65]}}}})
    _fails_before_any_job(
        wf, ["--configfile", name, "--config", "scale=smoke"],
        "config key 'scales.smoke.scaling.ghosts'", "ghosts k=65 must satisfy 1 <= k <= m",
    )


def _expected_runs(scale: dict) -> set[str]:
    """The run grid of one scale, written independently of workflow/rules/runs.smk."""
    seeds = scale["training"]["seeds"]
    cfgs = set()
    g = scale["scaling"]
    for n in g["widths"]:
        if g.get("serial_baseline", True):
            cfgs.add(("serial", 1, n, 0))
        for strat in g["strategies"]:
            for p in g["ranks"]:
                for k in g["ghosts"] if strat == "pp" else [0]:
                    cfgs.add((strat, p, n, k))
    for r in scale["same_loss"]["runs"]:
        k = r.get("ghosts", 0) if r["strategy"] == "pp" else 0
        cfgs.add((r["strategy"], r["ranks"], r["width"], k))
        if r["strategy"] == "pp" and scale["same_loss"].get("comparators", True):
            cfgs |= {("serial", 1, r["width"], 0), ("tp", r["ranks"], r["width"], 0)}
    qc = scale.get("quality_cost", {})
    gs = qc.get("ghost_sweep")
    if gs:
        cfgs |= {("pp", p, n, k) for n in gs["widths"] for p in gs["ranks"] for k in gs["ghosts"]}
    ws = qc.get("width_sweep")
    if ws:
        for strat in ws["strategies"]:
            for p in [1] if strat == "serial" else ws["ranks"]:
                cfgs |= {(strat, p, n, 0) for n in ws["widths"]}
    h = scale.get("hardness")
    if h and h.get("enabled", True):
        w = h.get("width") or max(n for _, _, n, _ in cfgs)
        cfgs |= {(h.get("strategy", "serial"), h.get("ranks", 1), n, 0) for n in (w, w // 2)}
    runs = {f"{s}-p{p}-n{n}-k{k}-s{seed}" for s, p, n, k in cfgs for seed in seeds}
    abl = scale.get("init_ablation") or {}
    if abl.get("enabled"):  # an extra arm per init that is not the scale's own
        own = scale["training"].get("pp_init", "variance")
        for r in abl["runs"]:
            for init in abl["inits"]:
                if init != own:
                    runs |= {f"pp-p{r['ranks']}-n{r['width']}-k{r['ghosts']}-s{seed}-init{init}"
                             for seed in seeds}
    return runs


def _job_counts(out: str) -> dict[str, int]:
    table = out.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.mark.parametrize("profile,scale", [("local", "local"), ("frontier", "paper")])
def test_profile_by_bare_name_builds_full_dag(wf, profile, scale):
    """`snakemake --profile local|frontier` works from the root and builds the whole study."""
    res = snakemake(["--profile", profile, "--dry-run"], wf, timeout=300)
    assert res.returncode == 0, res.stdout
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    expected = _expected_runs(config["scales"][scale])
    counts = _job_counts(res.stdout)
    assert counts["train"] == len(expected)
    assert counts["energy"] == len(expected)
    for rule in ("data", "costs", "aggregate", "fig_cost_model", "fig_energy", "fig_projection", "tables"):
        assert counts[rule] == 1, rule
    for run in expected:
        assert f"results/{scale}/runs/{run}/summary.json" in res.stdout


def test_frontier_job_geometry(wf):
    """256 ranks: 32 nodes, one task and one GCD per rank, 7 cores each, srun with binding."""
    target = "results/paper/runs/pp-p256-n16384-k32-s0/summary.json"
    res = snakemake(["--profile", "frontier", "--dry-run", "--printshellcmds", target], wf)
    assert res.returncode == 0, res.stdout
    job = res.stdout.split("rule train:")[1]
    for res_ in ("tasks=256", "mpi=srun", "nodes=32", "gpu=256", "tasks_per_gpu=1", "cpus_per_task=7"):
        assert res_ in job, res_
    assert "srun --kill-on-bad-exit=1 --nodes 32 --ntasks 256 --cpus-per-task 7 --gpus-per-task 1 --gpu-bind=closest" in job
    assert "NCCL_SOCKET_IFNAME=hsn0" in job
    assert "--device cuda --backend nccl" in job and "--power-source auto" in job


def test_local_profile_launches_torchrun_with_one_thread_per_rank(wf):
    target = "results/local/runs/tp-p2-n512-k0-s0/summary.json"
    res = snakemake(["--profile", "local", "--cores", "2", "--dry-run", "--printshellcmds", target], wf)
    assert res.returncode == 0, res.stdout
    job = res.stdout.split("rule train:")[1]
    assert "threads: 2" in job
    assert "torchrun --standalone --nnodes 1 --nproc-per-node 2 -m phantom_parallel.train" in job
    assert "OMP_NUM_THREADS=1" in job and "--threads 1" in job
    assert "mpi=" not in job and "tasks=" not in job


def test_a_target_outside_the_scales_plan_is_refused_naming_it(wf):
    target = "results/local/runs/tp-p64-n512-k0-s0/summary.json"  # no such run at local scale
    res = snakemake(["--profile", "local", "--cores", "2", "--dry-run", target], wf)
    assert res.returncode != 0
    assert "tp-p64-n512-k0-s0" in res.stdout and "MissingRule" in res.stdout, res.stdout[-2000:]
    assert "KeyError" not in res.stdout and "Traceback" not in res.stdout
    assert not (wf / "results").exists()


def test_pip_requirements_match_pyproject():
    """envs/requirements.txt pins exactly the versions pyproject.toml pins."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = list(project["dependencies"])
    for extra in ("test", "workflow"):
        pins += project["optional-dependencies"][extra]
    pinned = dict(p.lower().split("==") for p in pins)
    lines = (REPO / "envs" / "requirements.txt").read_text().splitlines()
    reqs = dict(line.lower().split("==") for line in lines if line and not line.startswith("#"))
    for name, version in reqs.items():
        assert pinned.get(name) == version, f"{name}=={version} vs pyproject {pinned.get(name)}"
