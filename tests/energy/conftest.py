"""Shared helpers of the energy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def make_powercap(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """Write a fake powercap tree: zone dir -> (name, energy_uj, max_energy_range_uj)."""
    for zone, (name, energy, rng) in zones.items():
        d = root / zone
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{rng}\n")
    return root


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """A fake RAPL tree with one package, its core and dram subzones, and psys."""
    return make_powercap(
        tmp_path / "powercap",
        {
            "intel-rapl:0": ("package-0", 1_000_000, 262143328850),
            "intel-rapl:0:0": ("core", 500_000, 262143328850),
            "intel-rapl:0:1": ("dram", 200_000, 65712999613),
            "intel-rapl:1": ("psys", 9_000_000, 262143328850),
        },
    )


@pytest.fixture(autouse=True)
def _no_real_pm_counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` probes Cray pm_counters first: point its default at an empty test folder so
    no test reads the real ``/sys/cray``."""
    import phantom_parallel.energy.cray as cray

    monkeypatch.setattr(cray, "DEFAULT_PM_COUNTERS", str(tmp_path / "no-pm-counters"))
