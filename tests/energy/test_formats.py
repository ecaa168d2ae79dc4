"""Every fixture log parses to the hand-computed energy (expected.json), by both methods."""

from __future__ import annotations

import json
import time
from datetime import UTC
from pathlib import Path

import pytest

from phantom_parallel.energy.attribution import secondary_devices
from phantom_parallel.energy.formats import parse, sniff
from phantom_parallel.energy.formats.nvidia import parse_smi_csv
from phantom_parallel.energy.integrate import device_energy

from .conftest import FIXTURES

EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def _parse(name: str, spec: dict):
    path = FIXTURES / name
    if spec.get("tz") == "UTC":
        return parse_smi_csv(path, tz=UTC)
    return parse(path, spec["format"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_energy(name: str) -> None:
    spec = EXPECTED[name]
    result = _parse(name, spec)
    a, b = spec["window_ns"]
    tol = spec.get("tol", 1e-9)
    assert secondary_devices(result.samples) == set(spec["secondary"])
    for dev, joules in spec["devices"].items():
        de = device_energy(dev, result.samples, a, b)
        assert de.energy_j == pytest.approx(joules, rel=tol), (dev, de)
        if de.counter_j is not None:
            assert de.method == "counter"
        if de.counter_j is not None and de.integration_j is not None:
            assert de.integration_j == pytest.approx(joules, rel=1e-6)
            assert abs(de.rel_diff) < 1e-5
        assert de.coverage == pytest.approx(1.0)
        gap = spec.get("max_gap_s", {}).get(dev, 1.0)
        assert de.max_gap_s == pytest.approx(gap, abs=1e-3)
    assert result.lost_polls == spec.get("lost_polls", 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sniff_finds_format(name: str) -> None:
    assert sniff(FIXTURES / name) == EXPECTED[name]["format"]


def test_truncated_last_poll_is_reported_and_dropped() -> None:
    result = parse(FIXTURES / "rocm_mi300_json.log", "rocm-smi-json")
    kinds = [(i.line, i.kind) for i in result.issues]
    assert kinds == [(12, "truncated")]
    assert max(s.t_ns for s in result.samples) == EXPECTED["rocm_mi300_json.log"]["window_ns"][1]


def test_rocm_text_errors_reported_with_line_numbers() -> None:
    r5 = parse(FIXTURES / "rocm5_text.log", "rocm-smi-text")
    errs = [i for i in r5.issues if i.kind == "error"]
    assert len(errs) == 1 and errs[0].text.startswith("ERROR: 2 GPU[1]")
    lines = (FIXTURES / "rocm5_text.log").read_text().splitlines()
    assert lines[errs[0].line - 1] == errs[0].text
    r6 = parse(FIXTURES / "rocm6_text.log", "rocm-smi-text")
    assert [i.kind for i in r6.issues] == ["error"] and "get_power_avg" in r6.issues[0].text
    # the poll with the failed power read still has the counter
    gpu0 = [s for s in r6.samples if s.device == "0"]
    assert len(gpu0) == 5 and sum(s.power_w is None for s in gpu0) == 1


def test_rocm_csv_lost_poll_and_traceback() -> None:
    r = parse(FIXTURES / "rocm61_csv.log", "rocm-smi-csv")
    assert r.polls == 5 and r.lost_polls == 1
    assert {i.kind for i in r.issues} == {"error"}
    assert any("KeyError: 'card0'" in i.text for i in r.issues)


def test_amd_smi_tool_joules_are_corrected_to_2_pow_minus_16() -> None:
    r = parse(FIXTURES / "amdsmi62_watch.csv.log", "amd-smi-csv")
    s0 = next(s for s in r.samples if s.device == "0")
    # tool prints count x 15.3 µJ; true energy is count x 2^-16 J
    count = 51234567890123
    assert s0.energy_j == pytest.approx(count * 2**-16, rel=1e-9)
    assert not r.issues


def test_iso_stamps_with_zone() -> None:
    r = parse(FIXTURES / "rocm5_text.log", "rocm-smi-text")
    assert min(s.t_ns for s in r.samples) == 1741101302 * 10**9


def test_nvidia_smi_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        r = parse(FIXTURES / "nvsmi.csv.log", "nvidia-smi-csv")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert min(s.t_ns for s in r.samples) == 1741101302 * 10**9
    assert len([s for s in r.samples if s.device == "1"]) == 4  # [N/A] dropped


def test_unknown_format_and_unrecognisable_log(tmp_path: Path) -> None:
    from phantom_parallel.energy.formats import FormatError

    p = tmp_path / "x.log"
    p.write_text("hello\n")
    with pytest.raises(FormatError, match=str(p)):
        parse(p)
    with pytest.raises(FormatError, match="unknown format"):
        parse(p, "bogus")
