rule aggregate:
    """One tidy table for the whole study (study.parquet, one row per run; curves.parquet,
    one row per run and epoch) and its data dictionary, from the run folders."""
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
        same_loss=SC["same_loss"],
    script:
        "../scripts/aggregate.py"


rule plan:
    """The run plan of the scale: runs, ranks, nodes and the requested node-hours (upper bound)."""
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
        execution=EXE,
        runtime_min=TRAINING.get("runtime_min", 60),
    script:
        "../scripts/plan.py"
