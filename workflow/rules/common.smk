"""Configuration checks and the run table shared by all rules.

Everything the rules need is derived here from the validated config: the selected scale,
the output folders, and RUNS, the table of training runs (one per strategy, p, n, k, seed).
Rules never duplicate the trainer's or the energy subsystem's logic; they only build
command lines for phantom-data, phantom-train, phantom-energy and phantom-costs.
"""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import tempfile

import yaml
from snakemake.utils import validate

from phantom_parallel.constants import SCHEMA_ENUMS
from phantom_parallel.layout import validate_layout


def _validate_config():
    """Validate the config against config/schema.yaml, its enums of strategies, dtypes and
    power sources filled from phantom_parallel.constants.SCHEMA_ENUMS (the one definition of
    each list; the schema file has none)."""
    schema = yaml.safe_load(Path(workflow.basedir, "config", "schema.yaml").read_text())
    for name, values in SCHEMA_ENUMS.items():
        schema["definitions"][name]["enum"] = list(values)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "schema.yaml")
        path.write_text(yaml.safe_dump(schema, sort_keys=False))
        validate(config, schema=str(path))


_validate_config()

# The phantom-* tools and the python installed beside this Snakemake (same venv) come first in
# the rules' PATH even when that venv is not activated (`.venv/bin/snakemake --profile local`);
# not inside a conda environment (`--software-deployment-method conda`), which brings its own.
shell.prefix(
    "set -euo pipefail; "
    f'printenv CONDA_PREFIX > /dev/null || export PATH="{Path(sys.executable).parent}:$PATH"; '
)


class ConfigError(Exception):
    """A config value that the schema cannot check; the message names the key."""


def _fail(key, message):
    raise ConfigError(f"config key '{key}': {message}")


if config["scale"] not in config["scales"]:
    _fail(
        "scale",
        f"unknown scale {config['scale']!r}; defined in 'scales': "
        f"{', '.join(sorted(config['scales']))}",
    )


SCALE = config["scale"]
SC = config["scales"][SCALE]
EXE = dict(config["execution"])
TRAINING = SC["training"]
RES = f"{config['paths']['results']}/{SCALE}"
FIG = f"{config['paths']['figures']}/{SCALE}"
DATA = f"{RES}/data"


def run_id(strategy, p, n, k, seed, init=None):
    """Folder name of one training run; k is 0 for strategies without ghosts; init is the
    PP initialisation of an ablation run that differs from training.pp_init (else None).
    """
    return f"{strategy}-p{p}-n{n}-k{k}-s{seed}" + (f"-init{init}" if init else "")


def config_key(strategy, p, n, k):
    """(strategy, p, n, k) of one configuration; k is 0 for strategies without ghosts."""
    return (strategy, int(p), int(n), int(k) if strategy == "pp" else 0)


def config_of(entry):
    """The configuration key of a config entry {strategy, ranks, width, ghosts}."""
    return config_key(
        entry["strategy"], entry["ranks"], entry["width"], entry.get("ghosts", 0)
    )


def _check_config(key, strategy, p, n, k, ghost_key=None):
    """Refuse a configuration that cannot run, naming `key` (`ghost_key` for a bad k): the
    layout by phantom_parallel.layout.validate_layout (the trainer's own check), plus the
    study's rules that parallel strategies use at least 2 ranks and fsdp splits the batch.
    """
    if strategy != "serial" and p < 2:
        _fail(key, f"strategy {strategy} needs at least 2 ranks, got {p}")
    if strategy == "fsdp" and TRAINING["batch_size"] % p:
        _fail(
            key,
            f"fsdp splits the batch {TRAINING['batch_size']} over {p} ranks: not divisible",
        )
    try:
        validate_layout(strategy, n, p, k if strategy == "pp" else None)
    except ValueError as err:
        _fail((ghost_key or key) if str(err).startswith("ghosts") else key, str(err))


def _add_run(runs, key, strategy, p, n, k, experiment, init=None, ghost_key=None):
    """Add one configuration (all seeds) to the run table, checking it first."""
    _check_config(key, strategy, p, n, k, ghost_key)
    k = k if strategy == "pp" else 0
    if init is not None and init == TRAINING.get("pp_init"):
        init = (
            None  # the ablation arm equal to the scale's own init is the ordinary run
        )
    for seed in TRAINING["seeds"]:
        rid = run_id(strategy, p, n, k, seed, init)
        spec = runs.setdefault(
            rid,
            dict(
                run=rid,
                strategy=strategy,
                p=p,
                n=n,
                k=k,
                seed=seed,
                init=(
                    (init or TRAINING.get("pp_init") or "") if strategy == "pp" else ""
                ),
                ablation_arm=bool(init),
                experiments=[],
            ),
        )
        if experiment not in spec["experiments"]:
            spec["experiments"].append(experiment)


def _check_training(sc, scale):
    t = sc["training"]
    base = f"scales.{scale}.training"
    steps_per_epoch = sc["data"]["n_train"] // t["batch_size"]
    every = t.get("eval_every")
    if every is not None and every < 1:
        _fail(
            f"{base}.eval_every",
            f"{every} is not >= 1 step; omit the key to validate only at epoch ends",
        )
    if every is not None and every > steps_per_epoch:
        _fail(
            f"{base}.eval_every",
            f"{every} steps is more than one epoch ({steps_per_epoch} steps = n_train // "
            "batch_size); omit the key to validate only at epoch ends",
        )
    stats = sc.get("statistics", {}) or {}
    if stats.get("interval", "t") != "none" and len(t["seeds"]) < 2:
        _fail(
            f"{base}.seeds",
            f"{len(t['seeds'])} seed(s): a {stats.get('level', 0.95):.0%} interval needs at "
            f"least 2 (or set scales.{scale}.statistics.interval: none)",
        )


def build_runs(sc, scale):
    """The training runs of one scale: scaling grid, serial baselines, same-loss runs and their
    comparators, quality-cost sweeps, hardness pair, init ablation."""
    _check_training(sc, scale)
    runs = {}
    grid = sc["scaling"]
    base = f"scales.{scale}.scaling"
    for n in grid["widths"]:
        if grid.get("serial_baseline", True):
            _add_run(runs, f"{base}.serial_baseline", "serial", 1, n, 0, "scaling")
        for strategy in grid["strategies"]:
            for p in grid["ranks"]:
                ghosts = grid["ghosts"] if strategy == "pp" else [0]
                for k in ghosts:
                    _add_run(
                        runs,
                        base,
                        strategy,
                        p,
                        n,
                        k,
                        "scaling",
                        ghost_key=f"{base}.ghosts",
                    )
    qc = sc.get("quality_cost") or {}
    if "ghost_sweep" in qc:
        g, key = qc["ghost_sweep"], f"scales.{scale}.quality_cost.ghost_sweep"
        for n in g["widths"]:
            for p in g["ranks"]:
                for k in g["ghosts"]:
                    _add_run(
                        runs,
                        key,
                        "pp",
                        p,
                        n,
                        k,
                        "quality_cost",
                        ghost_key=f"{key}.ghosts",
                    )
    if "width_sweep" in qc:
        w, key = qc["width_sweep"], f"scales.{scale}.quality_cost.width_sweep"
        for strategy in w["strategies"]:
            for p in [1] if strategy == "serial" else w["ranks"]:
                for n in w["widths"]:
                    _add_run(runs, key, strategy, p, n, 0, "quality_cost")
    hard = hardness_plan(sc, scale, runs)
    if hard:
        for n in (hard["width"], hard["width"] // 2):
            _add_run(
                runs,
                f"scales.{scale}.hardness",
                hard["strategy"],
                hard["ranks"],
                n,
                0,
                "hardness",
            )
    abl = sc.get("init_ablation") or {}
    if abl.get("enabled", False):
        for i, r in enumerate(abl.get("runs", [])):
            key = f"scales.{scale}.init_ablation.runs[{i}]"
            if r["strategy"] != "pp":
                _fail(key, f"the init ablation is for pp runs, got {r['strategy']}")
            for init in abl.get("inits", ["fan-in", "variance"]):
                _add_run(
                    runs,
                    key,
                    "pp",
                    r["ranks"],
                    r["width"],
                    r.get("ghosts", 0),
                    "init_ablation",
                    init,
                )
    plan = same_loss_plan(sc, scale, runs)
    for cfg, _role in plan["judged"]:
        _add_run(runs, f"scales.{scale}.same_loss.runs", *cfg, "same_loss")
    if plan["reference"]:
        _add_run(
            runs,
            f"scales.{scale}.same_loss.target.reference",
            *plan["reference"],
            "same_loss_reference",
        )
    return runs, plan, hard


def hardness_plan(sc, scale, runs):
    """The hardness pair of a scale: {strategy, ranks, width, margin}, or None (disabled/absent)."""
    h = sc.get("hardness")
    if not h or not h.get("enabled", True):
        return None
    key = f"scales.{scale}.hardness"
    width = h.get("width")
    if width is None:
        widths = [r["n"] for r in runs.values()]
        widths += [r["width"] for r in sc["same_loss"]["runs"]]
        width = max(widths)
    if width % 2:
        _fail(f"{key}.width", f"{width} is odd: no student of half the width")
    return dict(
        strategy=h.get("strategy", "serial"),
        ranks=h.get("ranks", 1),
        width=width,
        margin=h.get("margin", 0.1),
    )


def _label(cfg):
    strategy, p, n, k = cfg
    return f"{strategy} p={p} n={n}" + (f" k={k}" if strategy == "pp" else "")


def same_loss_plan(sc, scale, runs):
    """The judged configurations (with their role), the target's reference configuration and
    tolerance, or the absolute target. The reference must be a configuration of the scale
    (a run of another block) and must not be judged."""
    sl = sc["same_loss"]
    key = f"scales.{scale}.same_loss"
    judged = []
    for i, r in enumerate(sl["runs"]):
        cfg = config_of(r)
        _check_config(f"{key}.runs[{i}]", *cfg)
        if cfg not in [c for c, _ in judged]:
            judged.append((cfg, "run"))
    if sl.get("comparators", True):
        for (strategy, p, n, _k), _role in list(judged):
            if strategy != "pp":
                continue
            for cfg, role in (
                (("serial", 1, n, 0), "serial comparator"),
                (("tp", p, n, 0), "tp comparator"),
            ):
                if cfg not in [c for c, _ in judged]:
                    judged.append((cfg, role))
    plan = dict(judged=judged, reference=None, tolerance=None, target_val_loss=None)
    if sl.get("target_val_loss") is not None:
        plan["target_val_loss"] = float(sl["target_val_loss"])
        return plan
    target = sl.get("target") or {}
    judged_cfgs = {c for c, _ in judged}
    existing = {
        config_key(r["strategy"], r["p"], r["n"], r["k"])
        for r in runs.values()
        if not r["ablation_arm"]
    }
    if target.get("reference"):
        ref = config_of(target["reference"])
        if ref not in existing:
            _fail(
                f"{key}.target.reference",
                f"{_label(ref)} is no configuration of scale {scale!r} (runs of scaling, "
                "quality_cost or hardness); add it to one of them or name another",
            )
        if ref in judged_cfgs:
            _fail(
                f"{key}.target.reference",
                f"{_label(ref)} is one of the judged configurations",
            )
    else:
        tps = sorted(
            (c for c in existing if c[0] == "tp" and c not in judged_cfgs),
            key=lambda c: (-c[2], c[1]),
        )
        if not tps:
            _fail(
                f"{key}.target.reference",
                f"no TP configuration of scale {scale!r} outside the judged runs to take as the "
                "reference; name one (strategy, ranks, width) or set target_val_loss",
            )
        ref = tps[0]
    plan["reference"] = ref
    plan["tolerance"] = float(target.get("tolerance", 0.02))
    return plan


RUNS, SAME_LOSS, HARDNESS = build_runs(SC, SCALE)


# ---------------------------------------------------------------- learning-rate sweep

# Model families of the learning-rate sweep: strategy -> family. Serial, TP, DTensor and FSDP
# train the same dense FFN (the same function of the same parameters); PP is another model.
FAMILIES = {
    "serial": "dense",
    "tp": "dense",
    "dtensor": "dense",
    "fsdp": "dense",
    "pp": "pp",
}


def lr_sweep_plan(sc, scale, runs):
    """The sweep runs of a scale, {name: spec} (spec: run, family, lr, strategy, p, n, k,
    seed, init, steps), or {} when lr_sweep is absent or disabled. Refuses, naming the key, an
    empty `values` or `seeds`, a learning rate <= 0, `steps` outside one to all training
    steps, a family that is not one of FAMILIES' values, a configuration of another family,
    and a family with runs in the scale but no sweep configuration."""
    sw = sc.get("lr_sweep") or {}
    if not sw.get("enabled", True) or not sw:
        return {}
    key = f"scales.{scale}.lr_sweep"
    values, seeds, fams = (
        sw.get("values", []),
        sw.get("seeds", []),
        sw.get("families", {}),
    )
    if not values:
        _fail(f"{key}.values", "empty: list the learning rates to try")
    for v in values:
        if not v > 0:
            _fail(f"{key}.values", f"learning rate {v!r} is not > 0")
    if len(set(values)) != len(values):
        _fail(f"{key}.values", f"{values} lists a learning rate twice")
    if not seeds:
        _fail(f"{key}.seeds", "empty: list at least one seed")
    t = sc["training"]
    total = sc["data"]["n_train"] // t["batch_size"] * t["epochs"]
    steps = sw.get("steps", total)
    if not 1 <= steps <= total:
        _fail(
            f"{key}.steps", f"{steps} is outside 1..{total} (the training runs' steps)"
        )
    known = sorted(set(FAMILIES.values()))
    for fam, entry in fams.items():
        if fam not in known:
            _fail(f"{key}.families", f"unknown family {fam!r}; expected one of {known}")
        if FAMILIES.get(entry["strategy"]) != fam:
            _fail(
                f"{key}.families.{fam}",
                f"strategy {entry['strategy']} is not of family {fam}",
            )
        _check_config(f"{key}.families.{fam}", *config_of(entry))
    needed = sorted({FAMILIES[r["strategy"]] for r in runs.values()} - set(fams))
    if needed:
        _fail(
            f"{key}.families",
            f"no configuration for family {needed[0]!r}, which has runs "
            "in this scale (each run takes its family's chosen learning rate)",
        )
    out = {}
    for fam, entry in sorted(fams.items()):
        strategy, p, n, k = config_of(entry)
        for lr in values:
            for seed in seeds:
                name = f"{fam}-lr{float(lr)!r}-s{seed}"
                out[name] = dict(
                    run=name,
                    family=fam,
                    lr=float(lr),
                    strategy=strategy,
                    p=p,
                    n=n,
                    k=k,
                    seed=seed,
                    steps=steps,
                    init=(t.get("pp_init") or "") if strategy == "pp" else "",
                )
    return out


LR_SWEEP = lr_sweep_plan(SC, SCALE, RUNS)
LR_WIDTH_SCALING = (SC.get("lr_sweep") or {}).get("width_scaling", "none")
LR_SWEEP_SCRIPT = Path(workflow.basedir) / "workflow" / "scripts" / "lr_sweep.py"


def lr_sweep_input(wildcards):
    """The sweep's table when the sweep is on: every training run reads its --lr from it."""
    return [derived_table("lr_sweep")] if LR_SWEEP else []


STATS = {"interval": "t", "level": 0.95, **(SC.get("statistics") or {})}
INFERENCE = {
    "enabled": False,
    "batch_size": 1024,
    "steps": 50,
    "warmup": 5,
    "repeats": 3,
    **(SC.get("inference") or {}),
}


# ---------------------------------------------------------------- devices (torchrun launcher)

# Tests only: pretend torch sees this many GPUs (dry runs of the GPU code paths on a CPU machine).
FAKE_GPUS_ENV = "PHANTOM_FAKE_GPU_COUNT"


def probe_gpus():
    """(GPUs torch can use on this machine, torch is a ROCm build, how this was found).

    Asked of torch itself (torch.cuda.is_available() and device_count()) in a child process
    of the interpreter that runs the rules, so a CPU-only torch on a machine with GPU device
    files counts 0, and CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES of
    the calling shell are honoured.
    """
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        if not fake.isdigit():
            raise ConfigError(
                f"environment variable {FAKE_GPUS_ENV}: {fake!r} is not a GPU count"
            )
        return int(fake), False, f"{FAKE_GPUS_ENV}={fake}, tests only"
    code = (
        "import json, torch; print(json.dumps([torch.cuda.device_count() "
        "if torch.cuda.is_available() else 0, torch.version.hip is not None]))"
    )
    try:
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
        )
        count, hip = json.loads(res.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0, False, f"torch is not importable by {sys.executable}"
    return int(count), bool(hip), f"torch.cuda.device_count() = {count}"


def visible_devices(count, hip):
    """The names of the GPUs torch counted: entries of the visible-device variable the calling
    shell set (HIP_VISIBLE_DEVICES first on ROCm), else 0..count-1."""
    names = (
        ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
        if hip
        else ("CUDA_VISIBLE_DEVICES",)
    )
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return [d.strip() for d in value.split(",")][:count]
    return [str(i) for i in range(count)]


def resolve_device(exe, runs, scale):
    """(device, GPU pool) of a study; one study runs all its ranks on one kind of device.

    - `cpu`: CPU ranks over gloo.
    - `cuda`: one GPU per rank; refused here, before any job, when torch sees no GPU or fewer
      GPUs than the widest run of the scale has ranks.
    - `auto`: `cuda` when torch sees at least as many GPUs as the widest run has ranks, else
      `cpu` for every run (a figure never compares CPU and GPU runs).
    With srun the device must be explicit (the login node is not the compute node) and SLURM
    assigns the GPUs (--gpus-per-task).
    """
    device, launcher = exe["device"], exe["launcher"]
    if launcher == "srun":
        if device == "auto":
            _fail(
                "execution.device", "set cpu or cuda explicitly with the srun launcher"
            )
        return device, []
    if device == "cpu":
        return "cpu", []
    count, hip, how = probe_gpus()
    widest = max(runs.values(), key=lambda r: r["p"])
    p = widest["p"]
    if device == "cuda":
        if count == 0:
            _fail(
                "execution.device",
                f"cuda, but torch sees no GPU ({how}); set execution.device: cpu or auto",
            )
        if p > count:
            _fail(
                "execution.device",
                f"cuda runs one rank per GPU, but run {widest['run']} of scale {scale!r} has "
                f"{p} ranks and torch sees {count} GPU(s) ({how}); set execution.device: cpu "
                f"or auto, or remove p = {p} from the scale",
            )
    elif count == 0:
        if "not importable" in how:
            print(f"execution.device auto -> cpu: {how}", file=sys.stderr)
        return "cpu", []
    elif p > count:
        print(
            f"execution.device auto -> cpu: run {widest['run']} of scale {scale!r} has {p} "
            f"ranks and torch sees {count} GPU(s) ({how}); the whole study runs on CPU",
            file=sys.stderr,
        )
        return "cpu", []
    return "cuda", visible_devices(count, hip)


EXE["device"], GPU_POOL = resolve_device(EXE, RUNS, SCALE)
if SC["data"].get("device") == "cuda" and EXE["launcher"] == "torchrun":
    if probe_gpus()[0] == 0:  # with srun the data job gets a GPU of the compute node
        _fail(
            f"scales.{SCALE}.data.device",
            "cuda, but torch sees no GPU on this machine; set cpu (or remove the key)",
        )
GPU_SLOTS = Path(workflow.basedir) / "workflow" / "scripts" / "gpu_slots.py"
GPU_LOCKS = f"{config['paths']['results']}/.gpu-slots"
if GPU_POOL and "gpu" not in workflow.global_resources:
    # never more GPU ranks at once than GPUs (`--resources gpu=N` on the command line wins)
    workflow.register_resource("gpu", len(GPU_POOL))


# The profiles set `resources: measure=1`; a `--resources ...` on the command line replaces the
# profile's whole list, so the limit is registered here too unless it was given.
if "measure" not in workflow.global_resources:
    workflow.register_resource("measure", 1)


def measure_slot(wildcards=None):
    """The `measure` resource: 1 for every job that runs on the machine whose training jobs
    are timed and metered (torchrun launcher), so with the profiles' global limit
    `resources: measure=1` a training job never shares the machine with another job. 0 with
    srun: there each training job runs on nodes of its own (sbatch --exclusive), and the
    jobs on the submitting host do not share them."""
    return 1 if EXE["launcher"] == "torchrun" else 0


def run_dir(rid):
    return f"{RES}/runs/{rid}"


def _ranks(wildcards):
    """Ranks of the job: a training run (wildcard run), a sweep run (wildcard sweep) or an
    inference job (wildcard name)."""
    run = getattr(wildcards, "run", None)
    if run is not None:
        return RUNS[run]["p"]
    sweep = getattr(wildcards, "sweep", None)
    return (
        LR_SWEEP[sweep]["p"] if sweep is not None else INFER_RUNS[wildcards.name]["p"]
    )


# ---------------------------------------------------------------- launching ranks


def train_threads(wildcards):
    """Cores a training job takes on this machine: p ranks x cpus_per_rank."""
    return _ranks(wildcards) * EXE["cpus_per_rank"]


def train_tasks(wildcards):
    """SLURM --ntasks (srun launcher, p > 1 only; one-rank jobs are not MPI jobs)."""
    p = _ranks(wildcards)
    return p if EXE["launcher"] == "srun" and p > 1 else None


def train_mpi(wildcards):
    """The `mpi` resource: its presence tells the SLURM plugin that the rule calls srun."""
    return "srun" if train_tasks(wildcards) else None


def train_nodes(wildcards):
    """SLURM --nodes: ceil(p / ranks_per_node) (8 GCDs per Frontier node)."""
    if EXE["launcher"] != "srun":
        return None
    return math.ceil(_ranks(wildcards) / EXE["ranks_per_node"])


def train_gpus(wildcards):
    """The `gpu` resource: p x gpus_per_rank with srun (SLURM --gpus), p on local GPUs (one
    device per rank, bounded by the `gpu` limit registered above); none on CPU."""
    if EXE["launcher"] == "srun":
        return _ranks(wildcards) * EXE["gpus_per_rank"] or None
    return _ranks(wildcards) if EXE["device"] == "cuda" else None


def train_tasks_per_gpu(wildcards):
    return 1 if train_gpus(wildcards) and EXE["launcher"] == "srun" else None


def train_cpus_per_task(wildcards):
    return EXE["cpus_per_rank"] if EXE["launcher"] == "srun" else None


def train_slurm_extra(wildcards):
    """sbatch --exclusive: a measured job gets its nodes to itself."""
    return "--exclusive" if EXE["launcher"] == "srun" else None


def train_runtime(wildcards, attempt):
    """Wall time of attempt 1, 2, ...: runtime_min x attempt, at most execution.max_runtime_min."""
    runtime = TRAINING.get("runtime_min", 60) * attempt
    return min(runtime, EXE.get("max_runtime_min") or runtime)


def launch_prefix(run, module="phantom_parallel.train"):
    """The command that starts the p ranks of one run (without the program's arguments);
    module: phantom_parallel.train (phantom-train) or phantom_parallel.infer (phantom-infer).
    """
    p = run["p"]
    env = {"OMP_NUM_THREADS": EXE["cpus_per_rank"], **EXE.get("env", {})}
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    trainer = f"python -m {module}"
    if p == 1:
        # One rank: no launcher. Under SLURM the plugin already wraps the job in srun -n1.
        return f"env {exports} {trainer}"
    if EXE["launcher"] == "torchrun":
        return (
            f"env {exports} torchrun --standalone --nnodes 1 --nproc-per-node {p}"
            f" -m {module}"
        )
    nodes = math.ceil(p / EXE["ranks_per_node"])
    # --kill-on-bad-exit: a rank that dies ends the whole step at once (no wait for the
    # collective timeout of the surviving ranks)
    srun = (
        f"srun --kill-on-bad-exit=1 --nodes {nodes} --ntasks {p}"
        f" --cpus-per-task {EXE['cpus_per_rank']}"
    )
    if EXE["gpus_per_rank"]:
        srun += f" --gpus-per-task {EXE['gpus_per_rank']}"
    if EXE.get("srun_extra"):
        srun = f"{srun} {EXE['srun_extra']}"
    return f"env {exports} {srun} {trainer}"


def train_args(run, folder=None, lr=None):
    """phantom-train arguments of one run; the same command resumes from its checkpoints.
    folder: the run folder (default: RES/runs/<run>); lr: the --lr value (a number, or a
    shell word such as "$lr"; default training.lr). A run with `steps` (sweep runs) stops there.
    """
    t = TRAINING
    args = [
        f"--data {DATA}",
        f"--run-dir {folder or run_dir(run['run'])}",
        f"--strategy {run['strategy']}",
        f"--width {run['n']}",
        f"--layers {t['layers']}",
        f"--activation {t.get('activation', 'gelu')}",
        f"--batch-size {t['batch_size']}",
        f"--epochs {t['epochs']}",
        f"--optimizer {t['optimizer']}",
        f"--lr {t['lr'] if lr is None else lr}",
        f"--seed {run['seed']}",
        f"--dtype {t['dtype']}",
        f"--device {EXE['device']}",
        f"--backend {EXE['backend']}",
        f"--checkpoint-every {t['checkpoint_every']}",
        f"--power-source {EXE['power_source']}",
        f"--power-interval-ms {EXE['power_interval_ms']}",
    ]
    if run["strategy"] == "pp":
        args.append(f"--ghosts {run['k']}")
        if run.get(
            "init"
        ):  # only when the config sets it (the trainer's default otherwise)
            args.append(f"--pp-init {run['init']}")
    if t.get("eval_every", 0) > 0:  # 0: only at epoch ends, the trainer's default
        args.append(f"--eval-every {t['eval_every']}")
    if EXE["device"] == "cpu":
        args.append(f"--threads {EXE['cpus_per_rank']}")
    if run.get("steps") or t.get("max_steps"):
        args.append(f"--max-steps {run.get('steps') or t['max_steps']}")
    if not EXE.get("progress", False):
        args.append("--no-progress")
    return " ".join(args)


def gpu_prefix(run):
    """Local GPUs: the job runs under workflow/scripts/gpu_slots.py, which locks p free devices
    of the pool and sets CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES to them."""
    if not GPU_POOL:
        return ""
    return (
        f"python {shlex.quote(str(GPU_SLOTS))} --devices {','.join(GPU_POOL)}"
        f" --need {run['p']} --lock-dir {GPU_LOCKS} -- "
    )


def train_command(wildcards):
    """One training run; with the sweep on, its --lr is its family's chosen learning rate
    (times swept width / run width with lr_sweep.width_scaling inverse), read from the
    sweep's table (lr_sweep_input) when the job starts."""
    run = RUNS[wildcards.run]
    if not LR_SWEEP:
        return f"{gpu_prefix(run)}{launch_prefix(run)} {train_args(run)}"
    table, family = derived_table("lr_sweep"), FAMILIES[run["strategy"]]
    width = (
        f" --width {run['n']} --width-scaling {LR_WIDTH_SCALING}"
        if LR_WIDTH_SCALING != "none"
        else ""
    )
    return (
        f"(lr=$(python {shlex.quote(str(LR_SWEEP_SCRIPT))} {table} {family}{width})"
        f" && {gpu_prefix(run)}{launch_prefix(run)} {train_args(run, lr='$lr')})"
    )


def lr_sweep_command(wildcards):
    """One sweep run: its own folder (RES/lr_sweep/<name>), learning rate and steps."""
    run = LR_SWEEP[wildcards.sweep]
    args = train_args(run, folder=f"{RES}/lr_sweep/{run['run']}", lr=run["lr"])
    return f"{gpu_prefix(run)}{launch_prefix(run)} {args}"


def data_args():
    """phantom-data generate arguments of the scale; optional keys are passed only when set."""
    d = SC["data"]
    args = [
        f"--d-in {d['d_in']} --d-out {d['d_out']}",
        f"--teacher-width {d['teacher_width']} --teacher-layers {d['teacher_layers']}",
        f"--n-train {d['n_train']} --n-val {d['n_val']}",
        f"--shard-rows {d['shard_rows']} --noise {d['noise']} --seed {d['seed']}",
    ]
    for key, flag in (
        ("n_test", "--n-test"),
        ("teacher_rank", "--teacher-rank"),
        ("teacher_gain", "--teacher-gain"),
        ("teacher_activation", "--activation"),
        ("device", "--device"),
    ):
        if d.get(key) is not None:
            args.append(f"{flag} {d[key]}")
    return " ".join(args)


def data_gpus(wildcards=None):
    """The `gpu` resource of the data job: 1 when data.device is cuda (SLURM --gpus; on a local
    machine one GPU of the `gpu` limit), else none."""
    return 1 if SC["data"].get("device") == "cuda" else None


# ---------------------------------------------------------------- inference (phantom-infer)


def inference_runs():
    """One inference configuration per (strategy, p, n, k) of the scaling block, `repeats`
    independent jobs each: {name: spec}; empty unless inference.enabled."""
    if not INFERENCE.get("enabled"):
        return {}
    out = {}
    for r in RUNS.values():
        if "scaling" not in r["experiments"] or r["ablation_arm"]:
            continue
        for rep in range(INFERENCE["repeats"]):
            name = f"{r['strategy']}-p{r['p']}-n{r['n']}-k{r['k']}-r{rep}"
            out[name] = {**r, "run": name, "repeat": rep}
    return out


INFER_RUNS = inference_runs()


def one_of(names):
    """A wildcard constraint that matches exactly these names: a target outside the scale's
    plan (say a run of another config) is refused by Snakemake as "no rule to produce <file>"
    before any job runs, not by a KeyError in an input function."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


def infer_command(wildcards):
    run = INFER_RUNS[wildcards.name]
    t, i = TRAINING, INFERENCE
    args = [
        f"--data {DATA}",
        f"--strategy {run['strategy']}",
        f"--width {run['n']}",
        f"--layers {t['layers']}",
        f"--batch-size {i['batch_size']}",
        f"--steps {i['steps']}",
        f"--warmup {i['warmup']}",
        f"--json {RES}/inference/{run['run']}.json",
        f"--device {EXE['device']}",
        f"--backend {EXE['backend']}",
        f"--power-source {EXE['power_source']}",
        f"--power-interval-ms {EXE['power_interval_ms']}",
    ]
    if run["strategy"] == "pp":
        args.append(f"--ghosts {run['k']}")
    if EXE["device"] == "cpu":
        args.append(f"--threads {EXE['cpus_per_rank']}")
    prefix = launch_prefix(run, module="phantom_parallel.infer")
    return f"{gpu_prefix(run)}{prefix} {' '.join(args)}"


def energy_args(wildcards):
    e = config["energy"]
    args = []
    if e.get("idle_watts") is not None:
        args.append(f"--idle-watts {e['idle_watts']}")
    if e.get("busy_watts") is not None:
        args.append(f"--busy-watts {e['busy_watts']}")
    return " ".join(args)


# ---------------------------------------------------------------- targets


def all_summaries():
    return [f"{run_dir(r)}/summary.json" for r in sorted(RUNS)]


def all_energies():
    return [f"{run_dir(r)}/energy.json" for r in sorted(RUNS)]


# One entry per figure group: the table the notebook rules (workflow/rules/notebooks.smk) and
# rule all are generated from. Each group is one papermill notebook, one rule, one report
# category; `inputs` are the tables it reads besides study.parquet.
FIGURE_GROUPS = {
    "fig_cost_model": dict(
        notebook="01_cost_model",
        figures=["fig1_cost_model"],
        tables=[],
        inputs=["costs/cost_model.csv"],
        category="1 Cost model",
        doc="Experiment 1: predicted FLOPs, communication volume and memory per step vs p, "
        "TP vs PP (cost model only, no runs).",
    ),
    "fig_predicted_vs_measured": dict(
        notebook="02_predicted_vs_measured",
        figures=["fig2_predicted_vs_measured"],
        tables=[],
        inputs=["costs/cost_model.csv"],
        category="2 Predicted vs measured",
        doc="Experiment 2: predicted vs measured bytes (and FLOPs) per step for every run.",
    ),
    "fig_strong_scaling": dict(
        notebook="03_strong_scaling",
        figures=["fig3_strong_scaling"],
        tables=[],
        inputs=[],
        category="3 Strong scaling",
        doc="Experiment 3: strong scaling at fixed model size: time per step (compute vs "
        "communication), throughput and peak memory vs p; TP vs PP vs DTensor.",
    ),
    "fig_energy": dict(
        notebook="04_energy",
        figures=["fig4_energy"],
        tables=["energy_reduction"],
        inputs=[],
        category="4 Energy",
        doc="Experiment 4: energy to train a fixed-size FFN vs p, TP vs PP, error bars over "
        "seeds, reduction in percent, energy method shown.",
    ),
    "fig_same_loss": dict(
        notebook="05_same_loss",
        figures=["fig5_same_loss"],
        tables=["same_loss_summary"],
        inputs=["curves.parquet", "tables/same_loss.csv"],
        category="5 Same loss, fewer GPUs",
        doc="Experiment 5: validation loss against samples and energy, and the step, time, "
        "energy and device-hours at the target loss (from a reference configuration that is not "
        "judged), interpolated between evaluations; mean and 95 % t-interval over seeds; the "
        "cheapest configuration to reach the target named.",
    ),
    "fig_projection": dict(
        notebook="06_projection",
        figures=["fig6_projection"],
        tables=["calibration"],
        inputs=["costs/cost_model.csv"],
        category="6 Projection",
        doc="Experiment 6: projection of time and energy to 256 GPUs and beyond with the cost "
        "model calibrated on the measured runs, measured points overlaid.",
    ),
    "tables": dict(
        notebook="07_tables",
        figures=[],
        tables=["table1_configurations", "table2_summary"],
        inputs=[],
        category="7 Tables",
        doc="Experiment 7: configuration table (n, L, k, p, B, parameters) and "
        "per-configuration summary of time, energy and final loss (mean, 95 % t-interval over "
        "seeds, oversubscribed marked), TP vs PP.",
    ),
    "fig_frontier": dict(
        notebook="08_quality_cost",
        figures=["fig8_quality_cost"],
        tables=["frontier_summary"],
        inputs=["tables/frontier.csv"],
        category="8 Quality against cost",
        doc="Quality against cost: final test loss (validation loss without a test split) "
        "against energy, device-hours and parameters for the PP ghost sweep and the dense/TP "
        "width sweep at the same number of samples, Pareto front of the per-configuration means.",
    ),
}
if HARDNESS:
    FIGURE_GROUPS["fig_hardness"] = dict(
        notebook="09_hardness",
        figures=["fig9_hardness"],
        tables=[],
        inputs=["tables/hardness.csv"],
        category="9 Task hardness",
        doc="Task hardness: does a student of half the largest width reach a validation MSE at "
        "least `hardness.margin` worse (paired by seed, 95 % t-interval excluding zero)?",
    )
if INFERENCE.get("enabled"):
    FIGURE_GROUPS["fig_inference"] = dict(
        notebook="10_inference",
        figures=["fig10_inference"],
        tables=["inference_summary"],
        inputs=["tables/inference.csv"],
        category="10 Inference",
        doc="Inference: forward-only throughput, latency per batch and energy per sample for "
        "every configuration of the scaling block (phantom-infer), mean and 95 % t-interval.",
    )
if (SC.get("init_ablation") or {}).get("enabled"):
    FIGURE_GROUPS["fig_init_ablation"] = dict(
        notebook="11_init_ablation",
        figures=["fig11_init_ablation"],
        tables=["init_ablation"],
        inputs=["curves.parquet"],
        category="11 PP initialisation",
        doc="PP initialisation ablation: fan-in (old) vs variance-preserving init, validation "
        "loss curves and final losses, paired by seed.",
    )


# Tables derived from study.parquet and curves.parquet by workflow/scripts/derive.py, one rule
# each (rules `table_<name>`, generated in workflow/rules/aggregate.smk); every number of their
# figures is one row of these CSVs.
DERIVED_TABLES = {
    "same_loss": dict(
        inputs=["study.parquet", "curves.parquet"],
        doc="same_loss.csv: per judged run (and the reference), the step, time, energy and "
        "device-hours at the target validation loss, interpolated between evaluations.",
    ),
    "frontier": dict(
        inputs=["study.parquet"],
        doc="frontier.csv: per run of the scale (same samples), params, losses, energy, "
        "device-hours and whether its configuration is on the Pareto front.",
    ),
}
if LR_SWEEP:
    DERIVED_TABLES["lr_sweep"] = dict(
        inputs=[f"lr_sweep/{name}/summary.json" for name in sorted(LR_SWEEP)],
        doc="lr_sweep.csv: per sweep run (family, lr, seed) its final validation loss, the "
        "mean over seeds per (family, lr), and the chosen lr of each family (lowest mean).",
    )
if HARDNESS:
    DERIVED_TABLES["hardness"] = dict(
        inputs=["study.parquet"],
        doc="hardness.csv: full vs half-width student, paired gap in validation MSE, 95 % "
        "t-interval, pass/fail.",
    )
if INFERENCE.get("enabled"):
    DERIVED_TABLES["inference"] = dict(
        inputs=[f"inference/{name}.json" for name in sorted(INFER_RUNS)],
        doc="inference.csv: one row per phantom-infer job (phantom-infer JSON + oversubscription).",
    )


def derived_table(name):
    return f"{RES}/tables/{name}.csv"


def group_outputs(group):
    """All files that one figure group's notebook writes (for rule all and the tests)."""
    g = FIGURE_GROUPS[group]
    nb = g["notebook"]
    out = [f"{RES}/notebooks/{nb}.ipynb", f"{RES}/notebooks/{nb}.html"]
    out += [f"{FIG}/{f}.{ext}" for f in g["figures"] for ext in ("pdf", "png")]
    out += [f"{FIG}/{t}.{ext}" for t in g["tables"] for ext in ("csv", "tex")]
    return out


def group_rule_outputs(group):
    """Named outputs of one figure-group rule; the PNG figures, the CSV tables and the executed
    notebook (HTML, figures embedded) are marked for `snakemake --report`."""
    g = FIGURE_GROUPS[group]
    nb = g["notebook"]
    out = {
        "notebook": f"{RES}/notebooks/{nb}.ipynb",
        "html": report(
            f"{RES}/notebooks/{nb}.html",
            caption="../report/notebook.rst",
            category=g["category"],
            labels={"output": "executed notebook", "name": nb},
        ),
    }
    for f in g["figures"]:
        out[f"{f}_pdf"] = f"{FIG}/{f}.pdf"
        out[f] = report(
            f"{FIG}/{f}.png",
            caption=f"../report/{f}.rst",
            category=g["category"],
            labels={"output": "figure", "name": f},
        )
    for t in g["tables"]:
        out[t] = report(
            f"{FIG}/{t}.csv",
            caption=f"../report/{t}.rst",
            category=g["category"],
            labels={"output": "table", "name": t},
        )
        out[f"{t}_tex"] = f"{FIG}/{t}.tex"
    return out


def group_inputs(group):
    g = FIGURE_GROUPS[group]
    out = {
        "notebook": f"notebooks/{g['notebook']}.ipynb",
        "lib": "notebooks/figlib.py",
        "stats": "notebooks/studystats.py",
        "study": f"{RES}/study.parquet",
    }
    out.update({Path(i).stem.replace(".", "_"): f"{RES}/{i}" for i in g["inputs"]})
    return out


def notebook_cmd(group):
    """papermill + nbconvert for one figure group (parameters: table, out_dir, scale).

    The kernel keeps its inline matplotlib backend (figlib does not force Agg), so every figure
    is an image/png output of the executed notebook; nbconvert writes a self-contained HTML
    (output images as data URIs, --embed-images for any markdown image).
    """
    nb = FIGURE_GROUPS[group]["notebook"]
    return (
        f"(papermill --no-progress-bar --cwd . notebooks/{nb}.ipynb {RES}/notebooks/{nb}.ipynb"
        f" -p table {RES}/study.parquet -p out_dir {FIG} -p scale {SCALE} -p level {STATS['level']}"
        f" && jupyter nbconvert --log-level WARN --to html --embed-images"
        f" --output-dir {RES}/notebooks {RES}/notebooks/{nb}.ipynb)"
    )


REF = f"docs/reference-{SCALE}"


def _reference_sources():
    """docs/reference-<scale>/ file name -> the generated file it copies."""
    out = {"data_dictionary.md": f"{RES}/data_dictionary.md"}
    out.update({f"tables/{t}.csv": derived_table(t) for t in DERIVED_TABLES})
    for g in FIGURE_GROUPS.values():
        for ext in ("ipynb", "html"):
            out[f"notebooks/{g['notebook']}.{ext}"] = (
                f"{RES}/notebooks/{g['notebook']}.{ext}"
            )
        out.update({f"{f}.png": f"{FIG}/{f}.png" for f in g["figures"]})
        out.update({f"{t}.csv": f"{FIG}/{t}.csv" for t in g["tables"]})
    return out


REFERENCE_SOURCES = _reference_sources()


def reference_files():
    return [f"{REF}/{name}" for name in sorted(REFERENCE_SOURCES)]


def reference_source(name):
    return REFERENCE_SOURCES[name]


# ---------------------------------------------------------------- cost model


def costs_common():
    """phantom-costs arguments shared by both grids: model shape, batch, dtype, optimizer."""
    t, d = TRAINING, SC["data"]
    return (
        f"--layers {t['layers']} --batch {t['batch_size']} --d-in {d['d_in']}"
        f" --d-out {d['d_out']} --dtype {t['dtype']} --optimizer {t['optimizer']}"
        f" --activation {t.get('activation', 'gelu')} --format csv"
    )


def _join(values):
    return " ".join(str(v) for v in sorted(set(values)))


def costs_grid_args():
    """Experiment 1 grid: serial, TP and PP over cost_model.{widths, ranks, ghosts}."""
    g = SC["cost_model"]
    return (
        f"--strategy serial tp pp --width {_join(g['widths'])} --p {_join(g['ranks'])}"
        f" --ghosts {_join(g['ghosts'])} {costs_common()}"
    )


def costs_runs_args():
    """Every trained configuration (a superset grid; points that do not exist are skipped)."""
    runs = [r for r in RUNS.values() if r["strategy"] != "fsdp"]  # fsdp: no cost model
    ghosts = [r["k"] for r in runs if r["k"]] or [1]
    return (
        f"--strategy {_join(r['strategy'] for r in runs)}"
        f" --width {_join(r['n'] for r in runs)} --p {_join(r['p'] for r in runs)}"
        f" --ghosts {_join(ghosts)} {costs_common()}"
    )


# ---------------------------------------------------------------- SLURM account


class SlurmAccountError(Exception):
    """The slurm executor would submit without an account (the plugin then guesses one)."""


def check_slurm_account():
    """Before the first submission: every job sent to SLURM has an account (sbatch -A).

    Runs at start (onstart), so dry runs, `--report` and runs with nothing to do need no account.
    """
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    for job in workflow.dag.needrun_jobs():
        if (
            not job.is_local
            and not str(job.resources.get("slurm_account") or "").strip()
        ):
            raise SlurmAccountError(
                "no SLURM account: set PHANTOM_SLURM_ACCOUNT to your project "
                "(export PHANTOM_SLURM_ACCOUNT=abc123), used as sbatch -A by --profile frontier"
            )


onstart:
    check_slurm_account()
