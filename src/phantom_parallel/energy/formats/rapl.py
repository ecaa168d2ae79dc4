"""The sampler's RAPL log: ``t_ns,zone,name,energy_uj,max_energy_range_uj`` (raw sysfs µJ).

Devices are labelled ``<zone>`` (``intel-rapl:0``, ``intel-rapl:0:1``); the counter wraps at
``max_energy_range_uj`` (kept as ``wrap_j``).
"""

from __future__ import annotations

from pathlib import Path

from ..records import ParseResult, Sample
from ..units import RAPL_ENERGY_J, parse_number
from .common import records_from_rows
from .nvidia import _csv_rows


def parse_rapl_csv(path: str | Path) -> ParseResult:
    """Parse a RAPL log into cumulative-energy samples (J) with their wrap range (J)."""
    result, rows = _csv_rows(path, "rapl-csv", ("t_ns", "zone", "energy_uj"))
    polled: list[tuple[int, int, str, str, str]] = []
    for no, text, f in rows:
        name = f.get("name", "")
        device = f"{f['zone']}({name})" if name else f["zone"]
        try:
            e = parse_number(f["energy_uj"])
            rng = parse_number(f.get("max_energy_range_uj", ""))
        except ValueError as exc:
            result.issue(no, "garbage", f"{exc}: {text}")
            polled.append((int(f["t_ns"]), no, device, f"unreadable value ({exc})", ""))
            continue
        polled.append(
            (int(f["t_ns"]), no, device, "" if e is not None else "energy_uj not read", "")
        )
        if e is None:
            continue
        result.samples.append(
            Sample(
                int(f["t_ns"]),
                device,
                None,
                e * RAPL_ENERGY_J,
                None if rng is None else rng * RAPL_ENERGY_J,
            )
        )
    records_from_rows(result, polled)
    result.polls = len(result.records)
    return result
