"""phantom-parallel: the reproducible study of phantom vs tensor parallelism (arXiv 2508.00960).

    snakemake --profile local                      # the `local` scale on this machine
    snakemake --profile local --config scale=smoke # the CI smoke scale (a few minutes)
    snakemake --profile frontier                   # the `paper` scale on Frontier (SLURM)
    snakemake --report report.html                 # HTML report with every figure

data -> one training job per (strategy, p, n, k, seed) -> energy per run -> one tidy table
(study.parquet + data dictionary) -> one papermill notebook per figure group -> figures/.
See docs/workflow.md and docs/experiments.md.
"""


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/devices.smk"
include: "workflow/rules/launch.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/slurm.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/energy.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/costs.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/notebooks.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    runs,
    energy,
    costs,
    aggregate,
    plan,
    reference,
    reference_copy,


rule all:
    """Every figure, table and executed notebook of the selected scale."""
    input:
        [out for group in FIGURE_GROUPS for out in group_outputs(group)],
        f"{RES}/data_dictionary.md",


rule runs:
    """Only the training runs and their energy (no analysis)."""
    input:
        all_summaries(),
        all_energies(),
