"""Attribution of device energies to packages and nodes (MI250X primary/secondary GCDs).

On an MI250X the primary (even) GCD of a package reports power and energy for the whole
package (both dies + HBM); the secondary (odd) GCD reads ``N/A (Secondary die)`` or 0. A
package's energy is its primary's, never primary + secondary, never halved. A device is taken
as a secondary when every reading of it is marked secondary or is 0/missing while its even
partner has non-zero readings. Without secondaries each device is its own package (MI300X,
MI210, NVIDIA, RAPL zones).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .records import Sample


def secondary_devices(samples: Iterable[Sample]) -> set[str]:
    """Devices whose readings are all secondary-die markers or zeros, with a live partner."""
    zero: dict[str, bool] = {}
    nonzero: set[str] = set()
    by_dev: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_dev[s.device].append(s)
    for dev, ss in by_dev.items():
        energies = [s.energy_j for s in ss if s.energy_j is not None]
        dead = all(s.secondary or not s.power_w for s in ss) and not any(energies)
        zero[dev] = dead
        if not dead:
            nonzero.add(dev)
    out = set()
    for dev, dead in zero.items():
        if dead and dev.isdigit() and int(dev) % 2 == 1 and str(int(dev) - 1) in nonzero:
            out.add(dev)
    return out


@dataclass
class Package:
    """One package: its primary device, all its devices, and how many of them the run used."""

    primary: str
    devices: list[str]
    used: int
    energy_j: float = 0.0


@dataclass
class NodeAttribution:
    """Packages of one node and the node's energy (J) = sum of the used packages."""

    host: str
    packages: list[Package] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return sum(p.energy_j for p in self.packages if p.used)

    def gcds_used_per_package(self) -> dict[str, int]:
        """``{primary device: number of its GCDs the run used}``."""
        return {p.primary: p.used for p in self.packages}


def _key(dev: str) -> tuple[int, int | str]:
    return (0, int(dev)) if dev.isdigit() else (1, dev)


def attribute(
    host: str,
    energies: dict[str, float],
    secondaries: set[str],
    used: set[str] | None,
) -> NodeAttribution:
    """Group ``energies`` (device -> J) into packages.

    used: devices the run used on this node (``None``: all devices count).
    """
    node = NodeAttribution(host)
    for dev in sorted(energies, key=_key):
        if dev in secondaries:
            continue
        devices = [dev]
        partner = str(int(dev) + 1) if dev.isdigit() else None
        if partner is not None and partner in secondaries:
            devices.append(partner)
        n_used = len(devices) if used is None else sum(d in used for d in devices)
        node.packages.append(Package(dev, devices, n_used, energies[dev]))
    orphans = secondaries - {d for p in node.packages for d in p.devices}
    for dev in sorted(orphans, key=_key):
        node.warnings.append(f"{host}: secondary GCD {dev} has no primary partner in the log")
    if used is not None:
        missing = used - {d for p in node.packages for d in p.devices}
        if missing:
            node.warnings.append(
                f"{host}: used devices {sorted(missing, key=_key)} have no readings in the log"
            )
    for p in node.packages:
        if 0 < p.used < len(p.devices):
            node.warnings.append(
                f"{host}: package of GCD {p.primary} counted whole although the run used "
                f"{p.used} of its {len(p.devices)} GCDs (the idle partner still draws power)"
            )
    return node


#: GCDs per Cray pm_counters accelerator (``accel<k>`` = MI250X package k = GCDs 2k, 2k+1 on
#: Frontier); used to tell which accelerators a run used from the GCDs it used.
GCDS_PER_ACCEL = 2
ACCEL = re.compile(r"^accel(\d+)$")


def attribute_pm(host: str, energies: dict[str, float], used: set[str] | None) -> NodeAttribution:
    """Devices-only attribution of Cray pm_counters: the packages are the ``accel<k>``
    devices (``node``, ``cpu``, ``memory`` are whole-node figures, never added to it).

    used: GCD labels the run used on this host (``None``: every accelerator counts);
    ``accel<k>`` counts when one of its GCDs ``GCDS_PER_ACCEL*k ..`` was used.
    """
    node = NodeAttribution(host)
    accels = sorted((d for d in energies if ACCEL.match(d)), key=lambda d: int(d[5:]))
    for dev in accels:
        k = int(dev[5:])
        gcds = {str(GCDS_PER_ACCEL * k + i) for i in range(GCDS_PER_ACCEL)}
        n = 1 if used is None or gcds & used else 0
        node.packages.append(Package(dev, [dev], n, energies[dev]))
    if used is not None:
        known = {
            str(GCDS_PER_ACCEL * int(d[5:]) + i) for d in accels for i in range(GCDS_PER_ACCEL)
        }
        missing = used - known
        if missing:
            node.warnings.append(
                f"{host}: used devices {sorted(missing, key=_key)} have no pm_counters "
                "accelerator file (accel<k> holds GCDs 2k, 2k+1)"
            )
    return node
