rule energy:
    """Energy of one run over its measured window(s) (phantom-energy extract -> energy.json)."""
    input:
        f"{RES}/runs/{{run}}/summary.json",
    output:
        f"{RES}/runs/{{run}}/energy.json",
    log:
        f"{RES}/logs/energy/{{run}}.log",
    conda:
        "../../envs/phantom.yaml"
    resources:
        measure=measure_slot,
    params:
        run=lambda wc: run_dir(wc.run),
        extra=energy_args,
    shell:
        "phantom-energy extract --run-dir {params.run} {params.extra} > {log} 2>&1"
