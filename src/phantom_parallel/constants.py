"""The project's lists, each defined once here (torch-free): strategies and dtypes; the power
sources are :mod:`phantom_parallel.energy.sources`' (re-exported). Every other list is a filter
of these, and ``config/schema.yaml``'s enums for them are filled from :data:`SCHEMA_ENUMS` by
``workflow/rules/common.smk`` before the config is validated."""

from __future__ import annotations

from phantom_parallel.energy.sources import POWER_SOURCES

STRATEGIES: tuple[str, ...] = ("serial", "tp", "pp", "dtensor", "fsdp")
"""Every strategy of :func:`phantom_parallel.models.build_model` (``phantom-train --strategy``)."""
PARALLEL_STRATEGIES: tuple[str, ...] = tuple(s for s in STRATEGIES if s != "serial")
"""The strategies that run on p > 1 ranks."""
DENSE_STRATEGIES: tuple[str, ...] = tuple(s for s in STRATEGIES if s != "pp")
"""The strategies that train the dense FFN (no ghosts)."""
STRATEGY_LABELS: dict[str, str] = {"serial": "serial", "tp": "TP", "pp": "PP",
                                   "dtensor": "DTensor TP", "fsdp": "FSDP"}
"""How tables and figures name each strategy."""

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float64": 8, "bfloat16": 2}
"""Every parameter/activation dtype (``--dtype``) and its bytes per element."""
DTYPES: tuple[str, ...] = tuple(DTYPE_BYTES)

SCHEMA_ENUMS: dict[str, tuple[str, ...]] = {
    "strategy": STRATEGIES,
    "parallel_strategy": PARALLEL_STRATEGIES,
    "dense_strategy": DENSE_STRATEGIES,
    "dtype": DTYPES,
    "power_source": POWER_SOURCES,
}
"""``definitions`` of ``config/schema.yaml`` whose ``enum`` is one of these lists."""

__all__ = ["DENSE_STRATEGIES", "DTYPES", "DTYPE_BYTES", "PARALLEL_STRATEGIES", "POWER_SOURCES",
           "SCHEMA_ENUMS", "STRATEGIES", "STRATEGY_LABELS"]
