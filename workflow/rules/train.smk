wildcard_constraints:
    run="(serial|tp|pp|dtensor|fsdp)-p[0-9]+-n[0-9]+-k[0-9]+-s[0-9]+(-init[a-z-]+)?",


rule train:
    """One training run (strategy, p, n, k, seed) into its run folder.

    Only summary.json is declared: it marks completion, and Snakemake deletes the declared
    outputs of a failed job. The rest of the folder (metrics, events, power logs,
    checkpoints) survives a failure or a wall-time kill, so the rerun (same command,
    --rerun-incomplete) resumes from RUN/checkpoints. Its time and energy are reported, so it
    runs alone: `measure` (local machine) or sbatch --exclusive (SLURM); on local GPUs it
    gets devices of its own (`gpu` resource, gpu_slots.py).
    """
    input:
        f"{DATA}/manifest.json",
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
