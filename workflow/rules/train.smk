wildcard_constraints:
    run=one_of(RUNS),
    sweep=one_of(LR_SWEEP),


rule train:
    """One training run (strategy, p, n, k, seed) into its run folder.

    Only summary.json is declared: it marks completion, and Snakemake deletes the declared
    outputs of a failed job. The rest of the folder (metrics, events, power logs,
    checkpoints) survives a failure or a wall-time kill, so the rerun (same command,
    --rerun-incomplete) resumes from RUN/checkpoints. Its time and energy are reported, so it
    runs alone: `measure` (local machine) or sbatch --exclusive (SLURM); on local GPUs it
    gets devices of its own (`gpu` resource, gpu_slots.py). With the scale's lr_sweep on,
    the sweep's table is an input and the run's --lr is its family's chosen learning rate.
    """
    input:
        data=f"{DATA}/manifest.json",
        lr_sweep=lr_sweep_input,
    output:
        f"{RES}/runs/{{run}}/summary.json",
    log:
        f"{RES}/logs/train/{{run}}.log",
    retries: EXE.get("retries")
    conda:
        "../../envs/phantom.yaml"
    threads: train_threads
    resources:
        tasks=train_tasks,
        mpi=train_mpi,
        nodes=train_nodes,
        gpu=train_gpus,
        tasks_per_gpu=train_tasks_per_gpu,
        cpus_per_task=train_cpus_per_task,
        slurm_extra=train_slurm_extra,
        measure=measure_slot,
        runtime=train_runtime,
    params:
        cmd=train_command,
    shell:
        "{params.cmd} >> {log} 2>&1"


rule lr_sweep_run:
    """One run of the learning-rate sweep (family, lr, seed): the family's sweep configuration
    for lr_sweep.steps steps at that learning rate, into RES/lr_sweep/<name>; measured like a
    training run (runs alone), but not part of the study's tables (only of lr_sweep.csv).
    """
    input:
        f"{DATA}/manifest.json",
    output:
        f"{RES}/lr_sweep/{{sweep}}/summary.json",
    log:
        f"{RES}/logs/lr_sweep/{{sweep}}.log",
    retries: EXE.get("retries")
    conda:
        "../../envs/phantom.yaml"
    threads: train_threads
    resources:
        tasks=train_tasks,
        mpi=train_mpi,
        nodes=train_nodes,
        gpu=train_gpus,
        tasks_per_gpu=train_tasks_per_gpu,
        cpus_per_task=train_cpus_per_task,
        slurm_extra=train_slurm_extra,
        measure=measure_slot,
        runtime=train_runtime,
    params:
        cmd=lr_sweep_command,
    shell:
        "{params.cmd} >> {log} 2>&1"
