"""`snakemake --report report.html` collects the outputs marked report(...) with their captions."""


report: "../report/workflow.rst"
