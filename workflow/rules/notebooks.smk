"""One rule per figure group (showyourwork style): each runs one papermill notebook.

The notebook (notebooks/NN_*.ipynb, parameters: table, out_dir, scale) reads the tidy tables,
writes its figures (PDF + PNG) and tables (CSV + LaTeX) to figures/<scale>/, and is kept
executed (+ HTML) in results/<scale>/notebooks/. Every figure is traceable to one command:
`snakemake --profile local <rule name>`.
"""


rule fig_cost_model:
    """Experiment 1: predicted FLOPs, communication volume and memory per step vs p, TP vs PP (cost model only, no runs)."""
    input:
        notebook="notebooks/01_cost_model.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
        costs=f"{RES}/costs/cost_model.csv",
    output:
        notebook=f"{RES}/notebooks/01_cost_model.ipynb",
        html=f"{RES}/notebooks/01_cost_model.html",
        fig1_cost_model_pdf=f"{FIG}/fig1_cost_model.pdf",
        fig1_cost_model=report(
            f"{FIG}/fig1_cost_model.png",
            caption="../report/fig1_cost_model.rst",
            category="1 Cost model",
        ),
    log:
        f"{RES}/logs/notebooks/01_cost_model.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("fig_cost_model") + " > {log} 2>&1"


rule fig_predicted_vs_measured:
    """Experiment 2: predicted vs measured bytes (and FLOPs) per step for every run."""
    input:
        notebook="notebooks/02_predicted_vs_measured.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
        costs=f"{RES}/costs/cost_model.csv",
    output:
        notebook=f"{RES}/notebooks/02_predicted_vs_measured.ipynb",
        html=f"{RES}/notebooks/02_predicted_vs_measured.html",
        fig2_predicted_vs_measured_pdf=f"{FIG}/fig2_predicted_vs_measured.pdf",
        fig2_predicted_vs_measured=report(
            f"{FIG}/fig2_predicted_vs_measured.png",
            caption="../report/fig2_predicted_vs_measured.rst",
            category="2 Predicted vs measured",
        ),
    log:
        f"{RES}/logs/notebooks/02_predicted_vs_measured.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("fig_predicted_vs_measured") + " > {log} 2>&1"


rule fig_strong_scaling:
    """Experiment 3: strong scaling at fixed model size: time per step (compute vs communication), throughput and peak memory vs p; TP vs PP vs DTensor."""
    input:
        notebook="notebooks/03_strong_scaling.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
    output:
        notebook=f"{RES}/notebooks/03_strong_scaling.ipynb",
        html=f"{RES}/notebooks/03_strong_scaling.html",
        fig3_strong_scaling_pdf=f"{FIG}/fig3_strong_scaling.pdf",
        fig3_strong_scaling=report(
            f"{FIG}/fig3_strong_scaling.png",
            caption="../report/fig3_strong_scaling.rst",
            category="3 Strong scaling",
        ),
    log:
        f"{RES}/logs/notebooks/03_strong_scaling.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("fig_strong_scaling") + " > {log} 2>&1"


rule fig_energy:
    """Experiment 4: energy to train a fixed-size FFN vs p, TP vs PP, error bars over seeds, reduction in percent, energy method shown."""
    input:
        notebook="notebooks/04_energy.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
    output:
        notebook=f"{RES}/notebooks/04_energy.ipynb",
        html=f"{RES}/notebooks/04_energy.html",
        fig4_energy_pdf=f"{FIG}/fig4_energy.pdf",
        fig4_energy=report(
            f"{FIG}/fig4_energy.png",
            caption="../report/fig4_energy.rst",
            category="4 Energy",
        ),
        energy_reduction=report(
            f"{FIG}/energy_reduction.csv",
            caption="../report/energy_reduction.rst",
            category="4 Energy",
        ),
        energy_reduction_tex=f"{FIG}/energy_reduction.tex",
    log:
        f"{RES}/logs/notebooks/04_energy.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("fig_energy") + " > {log} 2>&1"


rule fig_same_loss:
    """Experiment 5: loss curves of smaller PP models on fewer ranks vs larger TP models on more ranks; energy and device-hours to a target validation loss."""
    input:
        notebook="notebooks/05_same_loss.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
        curves=f"{RES}/curves.parquet",
    output:
        notebook=f"{RES}/notebooks/05_same_loss.ipynb",
        html=f"{RES}/notebooks/05_same_loss.html",
        fig5_same_loss_pdf=f"{FIG}/fig5_same_loss.pdf",
        fig5_same_loss=report(
            f"{FIG}/fig5_same_loss.png",
            caption="../report/fig5_same_loss.rst",
            category="5 Same loss, fewer GPUs",
        ),
        loss_target=report(
            f"{FIG}/loss_target.csv",
            caption="../report/loss_target.rst",
            category="5 Same loss, fewer GPUs",
        ),
        loss_target_tex=f"{FIG}/loss_target.tex",
    log:
        f"{RES}/logs/notebooks/05_same_loss.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("fig_same_loss") + " > {log} 2>&1"


rule fig_projection:
    """Experiment 6: projection of time and energy to 256 GPUs and beyond with the cost model calibrated on the measured runs, measured points overlaid."""
    input:
        notebook="notebooks/06_projection.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
        costs=f"{RES}/costs/cost_model.csv",
    output:
        notebook=f"{RES}/notebooks/06_projection.ipynb",
        html=f"{RES}/notebooks/06_projection.html",
        fig6_projection_pdf=f"{FIG}/fig6_projection.pdf",
        fig6_projection=report(
            f"{FIG}/fig6_projection.png",
            caption="../report/fig6_projection.rst",
            category="6 Projection",
        ),
        calibration=report(
            f"{FIG}/calibration.csv",
            caption="../report/calibration.rst",
            category="6 Projection",
        ),
        calibration_tex=f"{FIG}/calibration.tex",
    log:
        f"{RES}/logs/notebooks/06_projection.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("fig_projection") + " > {log} 2>&1"


rule tables:
    """Experiment 7: configuration table (n, L, k, p, B, parameters) and per-configuration summary of time, energy and final loss, TP vs PP."""
    input:
        notebook="notebooks/07_tables.ipynb",
        lib="notebooks/figlib.py",
        study=f"{RES}/study.parquet",
    output:
        notebook=f"{RES}/notebooks/07_tables.ipynb",
        html=f"{RES}/notebooks/07_tables.html",
        table1_configurations=report(
            f"{FIG}/table1_configurations.csv",
            caption="../report/table1_configurations.rst",
            category="7 Tables",
        ),
        table1_configurations_tex=f"{FIG}/table1_configurations.tex",
        table2_summary=report(
            f"{FIG}/table2_summary.csv",
            caption="../report/table2_summary.rst",
            category="7 Tables",
        ),
        table2_summary_tex=f"{FIG}/table2_summary.tex",
    log:
        f"{RES}/logs/notebooks/07_tables.log",
    conda:
        "../../envs/phantom.yaml"
    shell:
        notebook_cmd("tables") + " > {log} 2>&1"
