"""The sampler's RAPL log: ``t_ns,zone,name,energy_uj,max_energy_range_uj`` (raw sysfs µJ).

Devices are labelled ``<zone>`` (``intel-rapl:0``, ``intel-rapl:0:1``); the counter wraps at
``max_energy_range_uj`` (kept as ``wrap_j``).
"""

from __future__ import annotations

from pathlib import Path

from ..records import ParseResult, Sample
from ..units import RAPL_ENERGY_J, parse_number
from .nvidia import _csv_rows


def parse_rapl_csv(path: str | Path) -> ParseResult:
    """Parse a RAPL log into cumulative-energy samples (J) with their wrap range (J)."""
    result, rows = _csv_rows(path, "rapl-csv", ("t_ns", "zone", "energy_uj"))
    for no, text, f in rows:
        try:
            e = parse_number(f["energy_uj"])
            rng = parse_number(f.get("max_energy_range_uj", ""))
        except ValueError as exc:
            result.issue(no, "garbage", f"{exc}: {text}")
            continue
        if e is None:
            continue
        name = f.get("name", "")
        device = f"{f['zone']}({name})" if name else f["zone"]
        result.samples.append(
            Sample(
                int(f["t_ns"]),
                device,
                None,
                e * RAPL_ENERGY_J,
                None if rng is None else rng * RAPL_ENERGY_J,
            )
        )
    return result
