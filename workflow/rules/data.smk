rule data:
    """Seeded teacher-student data set of the scale (phantom-data; manifest.json marks completion).
    With data.device cuda the teacher's forward pass runs on one GPU (the paper scale's teacher
    is 32,768 wide: hours on a CPU node, minutes on a GCD), still shard by shard."""
    output:
        f"{DATA}/manifest.json",
    log:
        f"{RES}/logs/data.log",
    conda:
        "../../envs/phantom.yaml"
    resources:
        runtime=60,
        gpu=data_gpus,
        measure=measure_slot,
    params:
        args=data_args(),
        out=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "phantom-data generate --out {params.out} {params.args} > {log} 2>&1"
