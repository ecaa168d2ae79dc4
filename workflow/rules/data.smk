rule data:
    """Seeded teacher-student data set of the scale (phantom-data; manifest.json marks completion)."""
    output:
        f"{DATA}/manifest.json",
    log:
        f"{RES}/logs/data.log",
    conda:
        "../../envs/phantom.yaml"
    resources:
        runtime=30,
        measure=measure_slot,
    params:
        args=data_args(),
        out=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "phantom-data generate --out {params.out} {params.args} > {log} 2>&1"
