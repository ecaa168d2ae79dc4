rule costs:
    """Closed-form predictions of phantom-costs: the cost-model grid (experiments 1, 6) and
    every trained configuration (experiment 2, joined to the runs by the aggregate rule).
    """
    output:
        grid=f"{RES}/costs/cost_model.csv",
        runs=f"{RES}/costs/runs.csv",
    log:
        f"{RES}/logs/costs.log",
    conda:
        "../../envs/phantom.yaml"
    resources:
        measure=measure_slot,
    params:
        grid=costs_grid_args(),
        runs=costs_runs_args(),
    shell:
        "(phantom-costs {params.grid} > {output.grid}"
        " && phantom-costs {params.runs} > {output.runs}) 2> {log}"
