"""Devices of the local (torchrun) launcher: how many GPUs torch sees, which device a scale's
runs use, and the GPU slots that keep measured jobs apart."""

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
