"""Launching ranks: the resources, launcher prefix (torchrun or srun) and command line of each
training, sweep and inference job, and the phantom-costs arguments."""


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


def infer_runtime_min():
    """Wall time of an inference job (one attempt): inference.runtime_min, else
    training.runtime_min, at most execution.max_runtime_min."""
    runtime = INFERENCE.get("runtime_min") or TRAINING.get("runtime_min", 60)
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


# ---------------------------------------------------------------- SLURM account


# phantom-costs (rule costs)


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
