"""Configuration checks and the values every other rule file derives from.

The config is validated here (schema, then the semantic checks that name the offending key);
then the selected scale, the output folders, run ids and the statistics and inference
settings. The run table is built in runs.smk, devices in devices.smk, command lines in
launch.smk, the targets in targets.smk. Rules never duplicate the trainer's or the energy
subsystem's logic; they only build command lines for phantom-data, phantom-train,
phantom-energy and phantom-costs.
"""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import tempfile

import yaml
from snakemake.utils import validate

from phantom_parallel.constants import SCHEMA_ENUMS
from phantom_parallel.layout import validate_layout


def _validate_config():
    """Validate the config against config/schema.yaml, its enums of strategies, dtypes and
    power sources filled from phantom_parallel.constants.SCHEMA_ENUMS (the one definition of
    each list; the schema file has none)."""
    schema = yaml.safe_load(Path(workflow.basedir, "config", "schema.yaml").read_text())
    for name, values in SCHEMA_ENUMS.items():
        schema["definitions"][name]["enum"] = list(values)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "schema.yaml")
        path.write_text(yaml.safe_dump(schema, sort_keys=False))
        validate(config, schema=str(path))


_validate_config()

# The phantom-* tools and the python installed beside this Snakemake (same venv) come first in
# the rules' PATH even when that venv is not activated (`.venv/bin/snakemake --profile local`);
# not inside a conda environment (`--software-deployment-method conda`), which brings its own.
shell.prefix(
    "set -euo pipefail; "
    f'printenv CONDA_PREFIX > /dev/null || export PATH="{Path(sys.executable).parent}:$PATH"; '
)


class ConfigError(Exception):
    """A config value that the schema cannot check; the message names the key."""


def _fail(key, message):
    raise ConfigError(f"config key '{key}': {message}")


if config["scale"] not in config["scales"]:
    _fail(
        "scale",
        f"unknown scale {config['scale']!r}; defined in 'scales': "
        f"{', '.join(sorted(config['scales']))}",
    )


SCALE = config["scale"]
SC = config["scales"][SCALE]
EXE = dict(config["execution"])
TRAINING = SC["training"]
RES = f"{config['paths']['results']}/{SCALE}"
FIG = f"{config['paths']['figures']}/{SCALE}"
DATA = f"{RES}/data"


def run_id(strategy, p, n, k, seed, init=None):
    """Folder name of one training run; k is 0 for strategies without ghosts; init is the
    PP initialisation of an ablation run that differs from training.pp_init (else None).
    """
    return f"{strategy}-p{p}-n{n}-k{k}-s{seed}" + (f"-init{init}" if init else "")


def config_key(strategy, p, n, k):
    """(strategy, p, n, k) of one configuration; k is 0 for strategies without ghosts."""
    return (strategy, int(p), int(n), int(k) if strategy == "pp" else 0)


def config_of(entry):
    """The configuration key of a config entry {strategy, ranks, width, ghosts}."""
    return config_key(
        entry["strategy"], entry["ranks"], entry["width"], entry.get("ghosts", 0)
    )


def _check_config(key, strategy, p, n, k, ghost_key=None):
    """Refuse a configuration that cannot run, naming `key` (`ghost_key` for a bad k): the
    layout by phantom_parallel.layout.validate_layout (the trainer's own check), plus the
    study's rules that parallel strategies use at least 2 ranks and fsdp splits the batch.
    """
    if strategy != "serial" and p < 2:
        _fail(key, f"strategy {strategy} needs at least 2 ranks, got {p}")
    if strategy == "fsdp" and TRAINING["batch_size"] % p:
        _fail(
            key,
            f"fsdp splits the batch {TRAINING['batch_size']} over {p} ranks: not divisible",
        )
    try:
        validate_layout(strategy, n, p, k if strategy == "pp" else None)
    except ValueError as err:
        _fail((ghost_key or key) if str(err).startswith("ghosts") else key, str(err))


def _add_run(runs, key, strategy, p, n, k, experiment, init=None, ghost_key=None):
    """Add one configuration (all seeds) to the run table, checking it first."""
    _check_config(key, strategy, p, n, k, ghost_key)
    k = k if strategy == "pp" else 0
    if init is not None and init == TRAINING.get("pp_init"):
        init = (
            None  # the ablation arm equal to the scale's own init is the ordinary run
        )
    for seed in TRAINING["seeds"]:
        rid = run_id(strategy, p, n, k, seed, init)
        spec = runs.setdefault(
            rid,
            dict(
                run=rid,
                strategy=strategy,
                p=p,
                n=n,
                k=k,
                seed=seed,
                init=(
                    (init or TRAINING.get("pp_init") or "") if strategy == "pp" else ""
                ),
                ablation_arm=bool(init),
                experiments=[],
            ),
        )
        if experiment not in spec["experiments"]:
            spec["experiments"].append(experiment)


def _check_training(sc, scale):
    t = sc["training"]
    base = f"scales.{scale}.training"
    steps_per_epoch = sc["data"]["n_train"] // t["batch_size"]
    every = t.get("eval_every")
    if every is not None and every < 1:
        _fail(
            f"{base}.eval_every",
            f"{every} is not >= 1 step; omit the key to validate only at epoch ends",
        )
    if every is not None and every > steps_per_epoch:
        _fail(
            f"{base}.eval_every",
            f"{every} steps is more than one epoch ({steps_per_epoch} steps = n_train // "
            "batch_size); omit the key to validate only at epoch ends",
        )
    stats = sc.get("statistics", {}) or {}
    if stats.get("interval", "t") != "none" and len(t["seeds"]) < 2:
        _fail(
            f"{base}.seeds",
            f"{len(t['seeds'])} seed(s): a {stats.get('level', 0.95):.0%} interval needs at "
            f"least 2 (or set scales.{scale}.statistics.interval: none)",
        )


STATS = {"interval": "t", "level": 0.95, **(SC.get("statistics") or {})}
INFERENCE = {
    "enabled": False,
    "batch_size": 1024,
    "steps": 50,
    "warmup": 5,
    "repeats": 3,
    **(SC.get("inference") or {}),
}
