rule aggregate:
    """One tidy table for the whole study (study.parquet, one row per run; curves.parquet,
    one row per run and evaluation) and its data dictionary, from the run folders."""
    input:
        summaries=all_summaries(),
        energies=all_energies(),
        costs=f"{RES}/costs/runs.csv",
        dictionary="workflow/schemas/data_dictionary.yaml",
    output:
        study=report(
            f"{RES}/study.parquet",
            caption="../report/study.rst",
            category="0 Data",
        ),
        curves=f"{RES}/curves.parquet",
        dictionary=report(
            f"{RES}/data_dictionary.md",
            caption="../report/data_dictionary.rst",
            category="0 Data",
        ),
    log:
        f"{RES}/logs/aggregate.log",
    conda:
        "../../envs/phantom.yaml"
    params:
        runs=[RUNS[r] for r in sorted(RUNS)],
        scale=SCALE,
        training=TRAINING,
        cpus_per_rank=EXE["cpus_per_rank"],
    script:
        "../scripts/aggregate.py"


for _table in DERIVED_TABLES:

    rule:
        name:
            f"table_{_table}"
        input:
            [f"{RES}/{i}" for i in DERIVED_TABLES[_table]["inputs"]],
        output:
            report(
                derived_table(_table),
                caption=f"../report/table_{_table}.rst",
                category="0 Data",
            ),
        log:
            f"{RES}/logs/tables/{_table}.log",
        localrule: True
        conda:
            "../../envs/phantom.yaml"
        resources:
            # table_inference needs only the inference jobs: it may run beside training
            measure=measure_slot,
        params:
            kind=_table,
            doc=DERIVED_TABLES[_table]["doc"],
            scale=SCALE,
            same_loss=SAME_LOSS,
            hardness=HARDNESS,
            statistics=STATS,
            cpus_per_rank=EXE["cpus_per_rank"],
            infer_runs=INFER_RUNS,
            lr_sweep=LR_SWEEP,
        script:
            "../scripts/derive.py"

    workflow.get_rule(f"table_{_table}").docstring = DERIVED_TABLES[_table]["doc"]


rule plan:
    """The run plan of the scale: training runs, learning-rate sweep runs and inference jobs,
    ranks, nodes and the requested node-hours (upper bound)."""
    output:
        f"{RES}/plan.csv",
    log:
        f"{RES}/logs/plan.log",
    conda:
        "../../envs/phantom.yaml"
    resources:
        measure=measure_slot,
    params:
        runs=[RUNS[r] for r in sorted(RUNS)],
        sweep=[LR_SWEEP[s] for s in sorted(LR_SWEEP)],
        infer=[INFER_RUNS[i] for i in sorted(INFER_RUNS)],
        execution=EXE,
        runtime_min=train_runtime(None, 1),
        infer_runtime_min=infer_runtime_min(),
    script:
        "../scripts/plan.py"
