"""Config validation of the study design (issue 11) and the flags the rules pass: dry runs only.

A bad study design fails before any job, naming the key: a same-loss reference that is no
configuration of the scale (or is judged), eval_every < 1 or longer than an epoch, a sweep with
k > m = n/p, fewer than 2 seeds where intervals are asked for. New trainer flags are passed only
when the config sets them, so the current trainer keeps working."""

from pathlib import Path

import pytest
import yaml

from .helpers import REPO, copy_workflow, dry_run_jobs, snakemake


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def _smoke(**blocks) -> dict:
    return {"scales": {"smoke": blocks}}


def _run(wf: Path, overlay: dict, *extra: str):
    name = f"overlay-{abs(hash(yaml.safe_dump(overlay)))}.yaml"
    (wf / name).write_text(yaml.safe_dump(overlay))
    return snakemake(["--profile", "local", "--cores", "1", "--configfile", name,
                      "--config", "scale=smoke", *extra], wf, timeout=300)


def _fails(wf: Path, overlay: dict, *needles: str) -> None:
    res = _run(wf, overlay, "--dry-run")
    assert res.returncode != 0, res.stdout[-3000:]
    for needle in needles:
        assert needle in res.stdout, f"{needle!r} not in:\n{res.stdout[-3000:]}"
    assert not (wf / "results").exists()


def _jobs(wf: Path, overlay: dict) -> list[dict[str, str]]:
    res = _run(wf, overlay, "--dry-run", "--printshellcmds")
    assert res.returncode == 0, res.stdout[-3000:]
    return dry_run_jobs(res.stdout)


def test_reference_that_names_no_configuration_is_rejected(wf):
    ref = {"strategy": "tp", "ranks": 2, "width": 1024}
    _fails(wf, _smoke(same_loss={"target": {"reference": ref}}),
           "config key 'scales.smoke.same_loss.target.reference'", "no configuration")


def test_reference_that_is_judged_is_rejected(wf):
    ref = {"strategy": "tp", "ranks": 2, "width": 128}  # the TP comparator of PP n = 128, p = 2
    _fails(wf, _smoke(same_loss={"target": {"reference": ref}}),
           "config key 'scales.smoke.same_loss.target.reference'", "judged")


@pytest.mark.parametrize("every", [-1, 0, 33])  # smoke: 4096 rows / 128 = 32 steps per epoch
def test_eval_every_outside_one_epoch_is_rejected(wf, every):
    _fails(wf, _smoke(training={"eval_every": every}), "config key 'scales.smoke.training.eval_every'")


def test_ghost_sweep_with_k_above_m_is_rejected(wf):
    sweep = {"widths": [128], "ranks": [2], "ghosts": [8, 65]}  # m = 64
    _fails(wf, _smoke(quality_cost={"ghost_sweep": sweep}),
           "config key 'scales.smoke.quality_cost.ghost_sweep.ghosts'",
           "ghosts k=65 must satisfy 1 <= k <= m = n/p = 128/2 = 64")


def test_one_seed_with_intervals_is_rejected(wf):
    _fails(wf, _smoke(training={"seeds": [0]}), "config key 'scales.smoke.training.seeds'")


def test_local_scale_has_at_least_five_seeds():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert len(config["scales"]["local"]["training"]["seeds"]) >= 5


def test_new_flags_only_when_set(tmp_path):
    """Without the keys: no --eval-every, --pp-init, --n-test, no inference jobs (an older
    trainer and data tool keep working). The repository's smoke scale sets them, so a copy of
    the workflow with them removed is used."""
    bare = copy_workflow(tmp_path)
    cfg_path = bare / "config" / "config.yaml"
    config = yaml.safe_load(cfg_path.read_text())
    smoke = config["scales"]["smoke"]
    for key in ("eval_every", "pp_init"):
        smoke["training"].pop(key, None)
    smoke["data"].pop("n_test", None)
    smoke.pop("inference", None)
    smoke["scaling"]["strategies"] = [s for s in smoke["scaling"]["strategies"] if s != "fsdp"]
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = _jobs(bare, {})
    train = [j["shell"] for j in jobs if j["rule"] == "train"]
    data = [j["shell"] for j in jobs if j["rule"] == "data"]
    assert train and not any("--eval-every" in c or "--pp-init" in c for c in train)
    assert not any("--n-test" in c for c in data)
    assert not any(j["rule"] in ("infer", "fig_inference", "fig_init_ablation") for j in jobs)


def test_flags_passed_when_set(wf):
    overlay = _smoke(training={"eval_every": 8, "pp_init": "variance"}, data={"n_test": 512},
                     scaling={"strategies": ["pp", "tp", "dtensor", "fsdp"]},
                     inference={"enabled": True, "repeats": 2},
                     init_ablation={"enabled": True, "runs": [
                         {"strategy": "pp", "ranks": 2, "width": 128, "ghosts": 8}]})
    jobs = _jobs(wf, overlay)
    train = {j["output"]: j["shell"] for j in jobs if j["rule"] == "train"}
    assert all("--eval-every 8" in c for c in train.values())
    pp = [c for o, c in train.items() if "/pp-" in o]
    assert pp and all("--pp-init " in c for c in pp)
    assert any("--pp-init fan-in" in c for o, c in train.items() if o.endswith("-initfan-in/summary.json"))
    assert any("--strategy fsdp" in c for c in train.values())
    assert any("--n-test 512" in j["shell"] for j in jobs if j["rule"] == "data")
    infer = [j for j in jobs if j["rule"] == "infer"]
    assert infer and all("-m phantom_parallel.infer" in j["shell"] and "--json " in j["shell"] for j in infer)
    rules = {j["rule"] for j in jobs}
    assert {"table_inference", "fig_inference", "fig_init_ablation"} <= rules


_SWEEP_FAMILIES = {"dense": {"strategy": "serial", "ranks": 1, "width": 128},
                   "pp": {"strategy": "pp", "ranks": 2, "width": 128, "ghosts": 8}}


@pytest.mark.parametrize(("sweep", "key", "needle"), [
    ({"values": []}, "values", "empty"),
    ({"values": [0.001, 0.0]}, "values", "0.0 is not > 0"),
    ({"values": [-0.001]}, "values", "is not > 0"),
    ({"seeds": []}, "seeds", "empty"),
    ({"steps": 100}, "steps", "outside 1..64"),  # smoke: 32 steps x 2 epochs
    ({"families": {**_SWEEP_FAMILIES, "moe": _SWEEP_FAMILIES["dense"]}}, "families",
     "unknown family 'moe'"),
    ({"families": {"dense": _SWEEP_FAMILIES["pp"], "pp": _SWEEP_FAMILIES["pp"]}},
     "families.dense", "strategy pp is not of family dense"),
])
def test_bad_lr_sweep_is_rejected_naming_the_key(wf, sweep, key, needle):
    _fails(wf, _smoke(lr_sweep=sweep), f"config key 'scales.smoke.lr_sweep.{key}'", needle)


def test_lr_sweep_runs_and_every_training_run_reads_its_lr_from_the_table(wf):
    jobs = _jobs(wf, {})
    sweep = [j["shell"] for j in jobs if j["rule"] == "lr_sweep_run"]
    assert len(sweep) == 4  # smoke: 2 families x 2 values x 1 seed
    assert all("--max-steps 8" in c for c in sweep)
    assert any("--strategy pp" in c and "--lr 0.003 " in c for c in sweep)
    train = [j["shell"] for j in jobs if j["rule"] == "train"]
    table = "results/smoke/tables/lr_sweep.csv"
    assert train and all("--lr $lr " in c and f"lr_sweep.py {table} " in c for c in train)
    assert all(c.split(f"{table} ")[1].startswith("pp)" if "--strategy pp" in c else "dense)")
               for c in train)


def test_inverse_width_scaling_passes_each_runs_width_to_the_table_reader(wf):
    sweep = {"values": [0.001, 0.003], "seeds": [0], "steps": 8, "families": _SWEEP_FAMILIES,
             "width_scaling": "inverse"}
    train = [j["shell"] for j in _jobs(wf, _smoke(lr_sweep=sweep)) if j["rule"] == "train"]
    assert train
    for c in train:
        width = c.split("--width ")[2].split()[0]  # first --width is the table reader's
        assert f" --width {width} --width-scaling inverse)" in c


def test_unknown_width_scaling_is_rejected_naming_the_key(wf):
    sweep = {"values": [0.001], "seeds": [0], "steps": 8, "families": _SWEEP_FAMILIES,
             "width_scaling": "sqrt"}
    _fails(wf, _smoke(lr_sweep=sweep), "width_scaling", "sqrt")


def test_without_lr_sweep_runs_use_training_lr(wf):
    jobs = _jobs(wf, _smoke(lr_sweep={"enabled": False}))
    assert not any(j["rule"] in ("lr_sweep_run", "table_lr_sweep") for j in jobs)
    train = [j["shell"] for j in jobs if j["rule"] == "train"]
    assert train and all("--lr 0.001 " in c and "lr_sweep.py" not in c for c in train)


def test_lr_sweep_without_a_family_that_has_runs_is_rejected(tmp_path):
    bare = copy_workflow(tmp_path)
    cfg_path = bare / "config" / "config.yaml"
    config = yaml.safe_load(cfg_path.read_text())
    config["scales"]["smoke"]["lr_sweep"]["families"].pop("pp")  # (overlays merge, not replace)
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _fails(bare, {}, "config key 'scales.smoke.lr_sweep.families'",
           "no configuration for family 'pp'")
