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
        d=SC["data"],
        out=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "phantom-data generate --out {params.out}"
        " --d-in {params.d[d_in]} --d-out {params.d[d_out]}"
        " --teacher-width {params.d[teacher_width]} --teacher-layers {params.d[teacher_layers]}"
        " --n-train {params.d[n_train]} --n-val {params.d[n_val]}"
        " --shard-rows {params.d[shard_rows]} --noise {params.d[noise]} --seed {params.d[seed]}"
        " > {log} 2>&1"
