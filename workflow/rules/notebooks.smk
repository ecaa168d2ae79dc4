"""One rule per figure group (showyourwork style), generated from FIGURE_GROUPS (targets.smk).

Each rule runs one papermill notebook (notebooks/NN_*.ipynb, parameters: table, out_dir, scale)
that reads the tidy tables, writes its figures (PDF + PNG) and tables (CSV + LaTeX) to
figures/<scale>/ and shows every figure and table inline; the executed notebook and its
self-contained HTML export are kept in results/<scale>/notebooks/, and the HTML is part of the
Snakemake report. Every figure is traceable to one command: `snakemake --profile local <rule>`.
"""

for _group in FIGURE_GROUPS:

    rule:
        name:
            _group
        input:
            **group_inputs(_group),
        output:
            **group_rule_outputs(_group),
        log:
            f"{RES}/logs/notebooks/{FIGURE_GROUPS[_group]['notebook']}.log",
        localrule: True
        conda:
            "../../envs/phantom.yaml"
        params:
            doc=FIGURE_GROUPS[_group]["doc"],
            # evaluated now: a shell directive is evaluated when the job runs, after the loop
            cmd=notebook_cmd(_group),
        shell:
            "{params.cmd} > {log} 2>&1"

    workflow.get_rule(_group).docstring = FIGURE_GROUPS[_group]["doc"]


rule reference:
    """Copy the executed notebooks (+ HTML), the PNG figures, the CSV tables and the data
    dictionary of the scale into docs/reference-<scale>/ (the committed reference run).
    """
    input:
        reference_files(),


rule reference_copy:
    """One file of docs/reference-<scale>/ from results/ or figures/ (target: reference)."""
    input:
        lambda wildcards: reference_source(wildcards.name),
    output:
        f"{REF}/{{name}}",
    log:
        f"{RES}/logs/reference/{{name}}.log",
    wildcard_constraints:
        name="|".join(re.escape(n) for n in REFERENCE_SOURCES),
    conda:
        "../../envs/phantom.yaml"
    shell:
        "cp {input} {output} 2> {log}"
