"""No silent gaps: missing, N/A and 0.0 W primary readings are counted, named and flagged."""

from __future__ import annotations

import json

import pytest

from phantom_parallel.energy.measure import LogInput
from phantom_parallel.energy.polls import cadence_s, drop_zero_runs
from phantom_parallel.energy.records import ParseResult, PollRecord, Sample
from phantom_parallel.energy.report import Work, measured_report
from phantom_parallel.energy.windows import windows_from_events

from .conftest import FIXTURES

GAPS = json.loads((FIXTURES / "gaps.json").read_text())
S = 10**9


def _report(name: str, fmt: str, window: list[int], interval: float | None = None):
    a, b = window
    w = windows_from_events(
        [{"t_ns": a, "event": "measure_start"}, {"t_ns": b, "event": "measure_end"}]
    )
    log = LogInput("n1", FIXTURES / name, fmt, "", interval)
    rep = measured_report([log], w, Work())
    assert rep is not None
    return rep


@pytest.mark.parametrize("name", sorted(GAPS))
def test_gap_fixture_counts_names_and_flags(name: str) -> None:
    spec = GAPS[name]
    rep = _report(name, spec["format"], spec["window_ns"])
    rows = {d["device"]: d for d in rep["devices"]}
    assert sorted(d for d, r in rows.items() if r["role"] == "secondary") == spec["secondary"]
    for dev, want in spec["devices"].items():
        row = rows[dev]
        assert row["energy_j"] == pytest.approx(want["energy_j"], rel=1e-6), (dev, row)
        assert row["polls_expected"] == want["expected"]
        assert row["polls_read"] == want["read"]
        assert row["polls_lost"] == want["lost"]
        assert row["polls_partial"] == want["partial"]
        assert row["coverage"] == pytest.approx(want["coverage"])
        bad = want["lost"] or want["partial"] or want["coverage"] < 1
        assert row["flagged"] == bool(bad)
        if bad:
            assert f"n1/{dev}" in rep["flagged_devices"]
            mine = [w for w in rep["warnings"] if w.startswith(f"n1/{dev}:")]
            assert mine and all("Z (" in w for w in mine)  # time and file:line named
            assert any(want["cause"] in w for w in mine), mine
            assert any(want["cause"] in i for i in row["poll_issues"])


def test_every_flagged_device_below_full_coverage_has_a_warning() -> None:
    for name, spec in GAPS.items():
        rep = _report(name, spec["format"], spec["window_ns"])
        for d in rep["devices"]:
            if d.get("coverage") is not None and d["coverage"] < 1:
                assert d["flagged"]
                assert any(
                    w.startswith(f"n1: device {d['device']}: samples cover")
                    for w in rep["warnings"]
                )


def test_cadence_is_the_whole_logs_not_the_devices_own() -> None:
    spec = GAPS["gap_rocm6_json.log"]
    rep = _report("gap_rocm6_json.log", spec["format"], spec["window_ns"])
    row = next(d for d in rep["devices"] if d["device"] == "0")
    assert row["cadence_s"] == pytest.approx(1.0)
    assert row["max_gap_s"] == pytest.approx(5.0)
    # --interval overrides the measured cadence: 3 s polls make a 5 s gap acceptable
    rep = _report("gap_rocm6_json.log", spec["format"], spec["window_ns"], interval=3.0)
    row = next(d for d in rep["devices"] if d["device"] == "0")
    assert row["coverage"] == pytest.approx(1.0) and row["polls_lost"] == 4 and row["flagged"]


def test_cadence_floor_and_records() -> None:
    r = ParseResult("x", "t")
    r.records = [PollRecord(k * S // 2, k) for k in range(5)]
    assert cadence_s(r) == pytest.approx(0.5)
    assert cadence_s(r, floor_s=1.0) == pytest.approx(1.0)
    assert cadence_s(r, interval_s=2.0) == pytest.approx(2.0)


def test_isolated_zero_is_excluded_and_reported() -> None:
    ss = [Sample(k * S, "0", 0.0 if k == 2 else 500.0, None) for k in range(5)]
    ss += [Sample(k * S, "1", 0.0, None) for k in range(5)]  # a device idle at 0 W throughout
    kept, events = drop_zero_runs(ss)
    assert [e.t_ns for e in events] == [2 * S] and events[0].device == "0"
    assert "poll lost" in events[0].cause
    assert len([s for s in kept if s.device == "0"]) == 4
    assert len([s for s in kept if s.device == "1"]) == 5


def test_zero_counter_between_readings_is_excluded_but_power_kept() -> None:
    ss = [Sample(k * S, "0", 100.0, 0.0 if k == 1 else 1000.0 + 100 * k) for k in range(4)]
    kept, events = drop_zero_runs(ss)
    assert len(kept) == 4 and kept[1].energy_j is None and kept[1].power_w == 100.0
    assert "energy counter 0.0 J" in events[0].cause


def test_secondary_zeros_are_not_touched() -> None:
    ss = [Sample(k * S, "1", 0.0 if k == 1 else 5.0, None) for k in range(3)]
    kept, events = drop_zero_runs(ss, {"1"})
    assert not events and len(kept) == 3


def test_log_with_every_poll_lost_is_not_a_measurement(tmp_path) -> None:
    """Every reading N/A: no measured figure (the caller models it, with a warning)."""
    log = tmp_path / "n1.log"
    doc = '{"card0": {"Average Graphics Package Power (W)": "N/A", "Energy counter": "N/A"}}'
    log.write_text("".join(f"{1741101302 + k}.000000000\n{doc}\n" for k in range(5)))
    window = [1741101302 * S, (1741101302 + 4) * S]
    w = windows_from_events(
        [{"t_ns": window[0], "event": "measure_start"}, {"t_ns": window[1], "event": "measure_end"}]
    )
    assert measured_report([LogInput("n1", log, "rocm-smi-json")], w, Work()) is None
