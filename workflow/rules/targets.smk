"""What the workflow produces: the per-run targets, the figure groups (FIGURE_GROUPS: one
notebook rule each), the derived tables (DERIVED_TABLES) and the committed reference copy.
"""


def all_summaries():
    return [f"{run_dir(r)}/summary.json" for r in sorted(RUNS)]


def all_energies():
    return [f"{run_dir(r)}/energy.json" for r in sorted(RUNS)]


# One entry per figure group: the table the notebook rules (workflow/rules/notebooks.smk) and
# rule all are generated from. Each group is one papermill notebook, one rule, one report
# category; `inputs` are the tables it reads besides study.parquet.
FIGURE_GROUPS = {
    "fig_cost_model": dict(
        notebook="01_cost_model",
        figures=["fig1_cost_model"],
        tables=[],
        inputs=["costs/cost_model.csv"],
        category="1 Cost model",
        doc="Experiment 1: predicted FLOPs, communication volume and memory per step vs p, "
        "TP vs PP (cost model only, no runs).",
    ),
    "fig_predicted_vs_measured": dict(
        notebook="02_predicted_vs_measured",
        figures=["fig2_predicted_vs_measured"],
        tables=[],
        inputs=["costs/cost_model.csv"],
        category="2 Predicted vs measured",
        doc="Experiment 2: predicted vs measured bytes (and FLOPs) per step for every run.",
    ),
    "fig_strong_scaling": dict(
        notebook="03_strong_scaling",
        figures=["fig3_strong_scaling"],
        tables=[],
        inputs=[],
        category="3 Strong scaling",
        doc="Experiment 3: strong scaling at fixed model size: time per step (compute vs "
        "communication), throughput and peak memory vs p; TP vs PP vs DTensor.",
    ),
    "fig_energy": dict(
        notebook="04_energy",
        figures=["fig4_energy"],
        tables=["energy_reduction"],
        inputs=[],
        category="4 Energy",
        doc="Experiment 4: energy to train a fixed-size FFN vs p, TP vs PP, error bars over "
        "seeds, reduction in percent, energy method shown.",
    ),
    "fig_same_loss": dict(
        notebook="05_same_loss",
        figures=["fig5_same_loss"],
        tables=["same_loss_summary"],
        inputs=["curves.parquet", "tables/same_loss.csv"],
        category="5 Same loss, fewer GPUs",
        doc="Experiment 5: validation loss against samples and energy, and the step, time, "
        "energy and device-hours at the target loss (from a reference configuration that is not "
        "judged), interpolated between evaluations; mean and 95 % t-interval over seeds; the "
        "cheapest configuration to reach the target named.",
    ),
    "fig_projection": dict(
        notebook="06_projection",
        figures=["fig6_projection"],
        tables=["calibration"],
        inputs=["costs/cost_model.csv"],
        category="6 Projection",
        doc="Experiment 6: projection of time and energy to 256 GPUs and beyond with the cost "
        "model calibrated on the measured runs, measured points overlaid.",
    ),
    "tables": dict(
        notebook="07_tables",
        figures=[],
        tables=["table1_configurations", "table2_summary"],
        inputs=[],
        category="7 Tables",
        doc="Experiment 7: configuration table (n, L, k, p, B, parameters) and "
        "per-configuration summary of time, energy and final loss (mean, 95 % t-interval over "
        "seeds, oversubscribed marked), TP vs PP.",
    ),
    "fig_frontier": dict(
        notebook="08_quality_cost",
        figures=["fig8_quality_cost"],
        tables=["frontier_summary"],
        inputs=["tables/frontier.csv"],
        category="8 Quality against cost",
        doc="Quality against cost: final test loss (validation loss without a test split) "
        "against energy, device-hours and parameters for the PP ghost sweep and the dense/TP "
        "width sweep at the same number of samples, Pareto front of the per-configuration means.",
    ),
}
if HARDNESS:
    FIGURE_GROUPS["fig_hardness"] = dict(
        notebook="09_hardness",
        figures=["fig9_hardness"],
        tables=[],
        inputs=["tables/hardness.csv"],
        category="9 Task hardness",
        doc="Task hardness: does a student of half the largest width reach a validation MSE at "
        "least `hardness.margin` worse (paired by seed, 95 % t-interval excluding zero)?",
    )
if INFERENCE.get("enabled"):
    FIGURE_GROUPS["fig_inference"] = dict(
        notebook="10_inference",
        figures=["fig10_inference"],
        tables=["inference_summary"],
        inputs=["tables/inference.csv"],
        category="10 Inference",
        doc="Inference: forward-only throughput, latency per batch and energy per sample for "
        "every configuration of the scaling block (phantom-infer), mean and 95 % t-interval.",
    )
if (SC.get("init_ablation") or {}).get("enabled"):
    FIGURE_GROUPS["fig_init_ablation"] = dict(
        notebook="11_init_ablation",
        figures=["fig11_init_ablation"],
        tables=["init_ablation"],
        inputs=["curves.parquet"],
        category="11 PP initialisation",
        doc="PP initialisation ablation: fan-in (old) vs variance-preserving init, validation "
        "loss curves and final losses, paired by seed.",
    )


# Tables derived from study.parquet and curves.parquet by workflow/scripts/derive.py, one rule
# each (rules `table_<name>`, generated in workflow/rules/aggregate.smk); every number of their
# figures is one row of these CSVs.
DERIVED_TABLES = {
    "same_loss": dict(
        inputs=["study.parquet", "curves.parquet"],
        doc="same_loss.csv: per judged run (and the reference), the step, time, energy and "
        "device-hours at the target validation loss, interpolated between evaluations.",
    ),
    "frontier": dict(
        inputs=["study.parquet"],
        doc="frontier.csv: per run of the scale (same samples), params, losses, energy, "
        "device-hours and whether its configuration is on the Pareto front.",
    ),
}
if LR_SWEEP:
    DERIVED_TABLES["lr_sweep"] = dict(
        inputs=[f"lr_sweep/{name}/summary.json" for name in sorted(LR_SWEEP)],
        doc="lr_sweep.csv: per sweep run (family, lr, seed) its final validation loss, the "
        "mean over seeds per (family, lr), and the chosen lr of each family (lowest mean).",
    )
if HARDNESS:
    DERIVED_TABLES["hardness"] = dict(
        inputs=["study.parquet"],
        doc="hardness.csv: full vs half-width student, paired gap in validation MSE, 95 % "
        "t-interval, pass/fail.",
    )
if INFERENCE.get("enabled"):
    DERIVED_TABLES["inference"] = dict(
        inputs=[f"inference/{name}.json" for name in sorted(INFER_RUNS)],
        doc="inference.csv: one row per phantom-infer job (phantom-infer JSON + oversubscription).",
    )


def derived_table(name):
    return f"{RES}/tables/{name}.csv"


def group_outputs(group):
    """All files that one figure group's notebook writes (for rule all and the tests)."""
    g = FIGURE_GROUPS[group]
    nb = g["notebook"]
    out = [f"{RES}/notebooks/{nb}.ipynb", f"{RES}/notebooks/{nb}.html"]
    out += [f"{FIG}/{f}.{ext}" for f in g["figures"] for ext in ("pdf", "png")]
    out += [f"{FIG}/{t}.{ext}" for t in g["tables"] for ext in ("csv", "tex")]
    return out


def group_rule_outputs(group):
    """Named outputs of one figure-group rule; the PNG figures, the CSV tables and the executed
    notebook (HTML, figures embedded) are marked for `snakemake --report`."""
    g = FIGURE_GROUPS[group]
    nb = g["notebook"]
    out = {
        "notebook": f"{RES}/notebooks/{nb}.ipynb",
        "html": report(
            f"{RES}/notebooks/{nb}.html",
            caption="../report/notebook.rst",
            category=g["category"],
            labels={"output": "executed notebook", "name": nb},
        ),
    }
    for f in g["figures"]:
        out[f"{f}_pdf"] = f"{FIG}/{f}.pdf"
        out[f] = report(
            f"{FIG}/{f}.png",
            caption=f"../report/{f}.rst",
            category=g["category"],
            labels={"output": "figure", "name": f},
        )
    for t in g["tables"]:
        out[t] = report(
            f"{FIG}/{t}.csv",
            caption=f"../report/{t}.rst",
            category=g["category"],
            labels={"output": "table", "name": t},
        )
        out[f"{t}_tex"] = f"{FIG}/{t}.tex"
    return out


def group_inputs(group):
    g = FIGURE_GROUPS[group]
    out = {
        "notebook": f"notebooks/{g['notebook']}.ipynb",
        "lib": "notebooks/figlib.py",
        "stats": "notebooks/studystats.py",
        "study": f"{RES}/study.parquet",
    }
    out.update({Path(i).stem.replace(".", "_"): f"{RES}/{i}" for i in g["inputs"]})
    return out


def notebook_cmd(group):
    """papermill + nbconvert for one figure group (parameters: table, out_dir, scale).

    The kernel keeps its inline matplotlib backend (figlib does not force Agg), so every figure
    is an image/png output of the executed notebook; nbconvert writes a self-contained HTML
    (output images as data URIs, --embed-images for any markdown image).
    """
    nb = FIGURE_GROUPS[group]["notebook"]
    return (
        f"(papermill --no-progress-bar --cwd . notebooks/{nb}.ipynb {RES}/notebooks/{nb}.ipynb"
        f" -p table {RES}/study.parquet -p out_dir {FIG} -p scale {SCALE} -p level {STATS['level']}"
        f" && jupyter nbconvert --log-level WARN --to html --embed-images"
        f" --output-dir {RES}/notebooks {RES}/notebooks/{nb}.ipynb)"
    )


REF = f"docs/reference-{SCALE}"


def _reference_sources():
    """docs/reference-<scale>/ file name -> the generated file it copies."""
    out = {"data_dictionary.md": f"{RES}/data_dictionary.md"}
    out.update({f"tables/{t}.csv": derived_table(t) for t in DERIVED_TABLES})
    for g in FIGURE_GROUPS.values():
        for ext in ("ipynb", "html"):
            out[f"notebooks/{g['notebook']}.{ext}"] = (
                f"{RES}/notebooks/{g['notebook']}.{ext}"
            )
        out.update({f"{f}.png": f"{FIG}/{f}.png" for f in g["figures"]})
        out.update({f"{t}.csv": f"{FIG}/{t}.csv" for t in g["tables"]})
    return out


REFERENCE_SOURCES = _reference_sources()


def reference_files():
    return [f"{REF}/{name}" for name in sorted(REFERENCE_SOURCES)]


def reference_source(name):
    return REFERENCE_SOURCES[name]
