"""amd-smi plain text (6.0, 6.1, 6.2; --watch and stamped): same fields and units as JSON/CSV."""

from __future__ import annotations

import json

import pytest

from phantom_parallel.energy.attribution import secondary_devices
from phantom_parallel.energy.formats import parse, sniff
from phantom_parallel.energy.measure import LogInput
from phantom_parallel.energy.report import Work, measured_report
from phantom_parallel.energy.windows import windows_from_events

from .conftest import FIXTURES

SPEC = json.loads((FIXTURES / "amdsmi_text.json").read_text())
T0, S = 1741101302, 10**9
WIN = [
    {"t_ns": T0 * S, "event": "measure_start"},
    {"t_ns": (T0 + 4) * S, "event": "measure_end"},
]


@pytest.mark.parametrize("name", sorted(SPEC))
def test_amd_smi_text_energy(name: str) -> None:
    spec = SPEC[name]
    assert sniff(FIXTURES / name) == "amd-smi-text"
    result = parse(FIXTURES / name)
    assert result.fmt == "amd-smi-text"
    assert secondary_devices(result.samples) == set(spec["secondary"])
    assert len(result.records) == spec["polls"]
    rep = measured_report(
        [LogInput("n1", FIXTURES / name, "amd-smi-text")], windows_from_events(WIN), Work()
    )
    assert rep is not None
    for dev, joules in spec["devices"].items():
        assert rep["per_device_j"][f"n1/{dev}"] == pytest.approx(joules, rel=2e-6)


def test_energy_uses_2_pow_minus_16_per_count() -> None:
    r = parse(FIXTURES / "amdsmi62_watch.txt.log")
    s0 = next(s for s in r.samples if s.device == "0")
    assert s0.energy_j == pytest.approx(51234567890123 * 2**-16, rel=1e-9)
    assert s0.power_w == 300.0 and s0.t_ns == T0 * S


def test_cut_mid_block_names_file_and_line_and_keeps_the_rest() -> None:
    name = "amdsmi62_cut.txt.log"
    r = parse(FIXTURES / name)
    cut = [i for i in r.issues if i.kind == "truncated"]
    assert len(cut) == 1 and cut[0].line == SPEC[name]["truncated_line"]
    assert str(cut[0]).startswith(f"{FIXTURES / name}:{cut[0].line}: truncated: GPU 0")
    assert "ENERGY section" in cut[0].text
    last = max((s for s in r.samples if s.device == "0"), key=lambda s: s.t_ns)
    assert last.t_ns == (T0 + 4) * S and last.power_w == 300.0 and last.energy_j is None
    rep = measured_report(
        [LogInput("n1", FIXTURES / name, "auto")], windows_from_events(WIN), Work()
    )
    assert rep is not None
    assert any(f"{name}:{cut[0].line}" in w for w in rep["warnings"])
    row = next(d for d in rep["devices"] if d["device"] == "0")
    assert row["flagged"] and row["polls_partial"] == 1


def test_timestamp_above_gpu_in_6_0() -> None:
    r = parse(FIXTURES / "amdsmi60_watch.txt.log")
    assert sorted({s.t_ns for s in r.samples}) == [(T0 + k) * S for k in range(5)]
    assert all(s.power_w == 150.0 for s in r.samples)
