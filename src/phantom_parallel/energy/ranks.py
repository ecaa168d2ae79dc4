"""Which devices a run used on each node: by PCI bus id when the manifest records the device
of every rank (``rank_devices``, :func:`.devices.rank_devices_manifest`) and the sampler
recorded the bus ids of the devices it read; otherwise by the rank-index rule (local rank i
uses device i, or the physical index under the visible-device variables), always warned.
Several ranks on one device count it once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .devices import normalize_bus_id
from .measure import LogInput


@dataclass
class UsedDevices:
    """``per_host``: host -> device labels used (None: unknown, every device counts);
    ``ranks``: host -> label -> ranks on it; ``method``: ``bus-id``, ``rank-index``, mixed."""

    per_host: dict[str, set[str]] | None
    ranks: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    method: str = "none"
    warnings: list[str] = field(default_factory=list)


def _short(host: object) -> str:
    return str(host).split(".")[0]


def _index_rule(manifest: dict[str, Any]) -> dict[str, set[str]] | None:
    hosts, ws = manifest.get("hosts"), manifest.get("world_size")
    if not hosts or not ws:
        return None
    uniq = list(
        dict.fromkeys(_short(h) for h in (list(hosts) if isinstance(hosts, dict) else hosts))
    )
    per = math.ceil(int(ws) / len(uniq))
    return {h: {str(i) for i in range(per)} for h in uniq}


def used_devices(manifest: dict[str, Any], logs: Iterable[LogInput]) -> UsedDevices:
    """Devices used per host from ``manifest`` and the sampler bus ids of ``logs``."""
    entries = manifest.get("rank_devices")
    if not isinstance(entries, list) or not entries:
        rule = _index_rule(manifest)
        out = UsedDevices(rule, method="rank-index" if rule else "none")
        if rule:
            out.warnings.append(
                "manifest.json has no rank_devices: assuming local rank i uses device i on "
                f"every node (rank-index rule): { ({h: sorted(v) for h, v in rule.items()}) }"
            )
        return out
    by_bus: dict[str, dict[str, str]] = defaultdict(dict)  # host -> bus id -> label
    for log in logs:
        for label, bus in (log.bus_ids or {}).items():
            if (b := normalize_bus_id(bus)) is not None:
                by_bus[log.host][b] = str(label)
    per_host: dict[str, set[str]] = defaultdict(set)
    ranks: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    by_index: dict[str, list[str]] = defaultdict(list)
    methods = set()
    count: dict[str, int] = defaultdict(int)
    for k, e in enumerate(entries):
        e = e if isinstance(e, dict) else {}
        rank = int(e.get("rank", k))
        host = _short(e.get("host") or "localhost")
        if e.get("type") not in (None, "cuda"):
            continue  # a CPU rank uses no accelerator
        bus = normalize_bus_id(e.get("pci_bus_id"))
        label = by_bus[host].get(bus) if bus else None
        if label is None:
            n = e.get("physical_index")
            if n is None:
                n = e.get("local_rank")
            if n is None:
                n = count[host]
            label = str(n)
            why = (
                f"its device {bus} is not among the devices the sampler read "
                f"({sorted(by_bus[host]) or 'none recorded'})"
                if bus
                else "no PCI bus id recorded for it"
            )
            by_index[host].append(f"rank {rank} -> device {label} ({why})")
            methods.add("rank-index")
        else:
            methods.add("bus-id")
        count[host] += 1
        per_host[host].add(label)
        ranks[host][label].append(rank)
    out = UsedDevices(
        dict(per_host),
        {h: dict(v) for h, v in ranks.items()},
        "+".join(sorted(methods)) or "none",
    )
    for host, items in by_index.items():
        out.warnings.append(f"{host}: attributed by the rank-index rule: {'; '.join(items)}")
    for host, labels in ranks.items():
        for label, rs in labels.items():
            if len(rs) > 1:
                out.warnings.append(
                    f"{host}: ranks {rs} share device {label}: its energy is counted once"
                )
    return out
