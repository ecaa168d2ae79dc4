"""phantom-parallel: phantom parallelism (PP) vs tensor parallelism (TP) for FFN training.

Subpackages and modules, one job each:

- :mod:`phantom_parallel.comm`: the one place every collective goes through (counted, timed).
- :mod:`phantom_parallel.mappings`: autograd Functions, one per communication pattern.
- :mod:`phantom_parallel.layers`: column/row tensor-parallel linears and the phantom linear.
- :mod:`phantom_parallel.models`: the plain FFN, parallel styles as data, ``build_model``.
- :mod:`phantom_parallel.costs`: closed-form FLOPs / GEMM shapes / bytes / memory per rank and
  step (types in :mod:`~phantom_parallel.cost_types`, CLI in :mod:`~phantom_parallel.costs_cli`).
- :mod:`phantom_parallel.hardware`: sourced hardware profiles (``config/hardware/*.yaml``).
- :mod:`phantom_parallel.collectives`, :mod:`phantom_parallel.timing`: the one time and energy
  model; :mod:`phantom_parallel.calibration` fits it, :mod:`phantom_parallel.projection` projects
  it (``phantom-costs project``).
- :mod:`phantom_parallel.bench` (CLI; ``bench_micro`` microbenchmarks, ``bench_steps`` steps,
  ``bench_analysis`` the time model fitted and checked, ``bench_report`` text/JSON):
  ``phantom-bench``.
- :mod:`phantom_parallel.data`: seeded teacher-student data in memory-mappable shards.
- :mod:`phantom_parallel.train`: the ``phantom-train`` CLI.
- :mod:`phantom_parallel.energy`: power sampling and energy extraction (``phantom-energy``).
"""

__version__ = "0.1.0"
