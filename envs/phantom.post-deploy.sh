#!/usr/bin/env bash
# Runs inside the new conda environment after Snakemake created it, from the working directory
# (the repository root): install phantom-parallel itself without touching the pinned deps.
set -euo pipefail
python -m pip install --no-deps -e .
