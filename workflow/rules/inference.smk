rule infer:
    """One phantom-infer job (forward-only throughput, latency, energy per sample) of one
    configuration of the scaling block (inference.enabled); measured like a training job.
    """
    input:
        f"{DATA}/manifest.json",
    output:
        f"{RES}/inference/{{name}}.json",
    log:
        f"{RES}/logs/inference/{{name}}.log",
    wildcard_constraints:
        name=one_of(INFER_RUNS),
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
        runtime=infer_runtime_min(),
    params:
        cmd=infer_command,
    shell:
        "{params.cmd} > {log} 2>&1"
