"""Counter difference and trapezoid on hand-made series: resets, wraps, stuck counters, gaps."""

from __future__ import annotations

import pytest

from phantom_parallel.energy.attribution import attribute, secondary_devices
from phantom_parallel.energy.integrate import device_energy
from phantom_parallel.energy.records import Sample

S = 10**9


def series(powers, energies, dt_s=1.0, t0=0, dev="0", wrap=None):
    return [
        Sample(t0 + int(k * dt_s * S), dev, p, e, wrap)
        for k, (p, e) in enumerate(zip(powers, energies, strict=True))
    ]


def test_window_edges_are_interpolated() -> None:
    ss = series([100.0] * 5, [0.0, 100.0, 200.0, 300.0, 400.0])
    de = device_energy("0", ss, int(0.5 * S), int(3.25 * S))
    assert de.counter_j == pytest.approx(275.0)
    assert de.integration_j == pytest.approx(275.0)
    assert de.mean_power_w == pytest.approx(100.0)


def test_counter_reset_is_detected_and_filled_from_power() -> None:
    # counter resets to 0 between t=2 and t=3 (driver reload); power is 100 W throughout
    ss = series([100.0] * 5, [1000.0, 1100.0, 1200.0, 50.0, 150.0])
    de = device_energy("0", ss, 0, 4 * S)
    assert de.resets == 1
    assert de.counter_j == pytest.approx(400.0)  # 200 + 100 (filled) + 100
    assert any("counter reset" in w for w in de.warnings)


def test_counter_reset_without_power_counts_zero_and_warns() -> None:
    ss = series([None] * 4, [10.0, 20.0, 5.0, 15.0])
    de = device_energy("0", ss, 0, 3 * S)
    assert de.resets == 1 and de.counter_j == pytest.approx(20.0)
    assert any("counted as 0 J" in w for w in de.warnings)


def test_rapl_wrap_uses_the_range() -> None:
    ss = series([None] * 3, [90.0, 5.0, 15.0], wrap=100.0)
    de = device_energy("0", ss, 0, 2 * S)
    assert de.wraps == 1 and de.resets == 0 and de.energy_j == pytest.approx(25.0)


def test_stuck_counter_falls_back_to_trapezoid() -> None:
    ss = series([200.0] * 5, [777.0] * 5)
    de = device_energy("0", ss, 0, 4 * S)
    assert de.stuck and de.method == "integration" and de.energy_j == pytest.approx(800.0)
    assert any("stuck" in w for w in de.warnings)


def test_idle_device_with_flat_counter_is_not_stuck() -> None:
    de = device_energy("0", series([0.5] * 3, [7.0] * 3), 0, 2 * S)
    assert not de.stuck and de.method == "counter" and de.energy_j == 0.0


def test_gap_longer_than_the_window() -> None:
    # regular 1 s polls, then nothing from t=5 to t=100; the window [40, 50] is inside the gap
    t = [0, 1, 2, 3, 4, 5, 100]
    ss = [Sample(k * S, "0", 100.0, 100.0 * k) for k in t]
    de = device_energy("0", ss, 40 * S, 50 * S)
    assert de.coverage == 0.0
    assert de.max_gap_s == pytest.approx(95.0)
    assert de.samples == 0
    assert de.energy_j == pytest.approx(1000.0)  # interpolated across the gap, and flagged
    assert any("cover 0.0 %" in w for w in de.warnings)


def test_partial_coverage_at_window_start() -> None:
    ss = series([100.0] * 3, [0.0, 100.0, 200.0], t0=2 * S)
    de = device_energy("0", ss, 0, 4 * S)
    assert de.coverage == pytest.approx(0.5) and de.max_gap_s == pytest.approx(2.0)
    assert de.energy_j == pytest.approx(200.0)


def test_disagreement_is_reported() -> None:
    ss = series([100.0] * 3, [0.0, 150.0, 300.0])
    de = device_energy("0", ss, 0, 2 * S)
    assert de.rel_diff == pytest.approx(200 / 300 - 1)
    assert any("disagree" in w for w in de.warnings)


def test_no_samples() -> None:
    de = device_energy("0", [], 0, S)
    assert de.method == "none" and de.energy_j == 0.0


def test_mi250x_node_attribution_never_double_counts() -> None:
    samples = []
    for g in range(8):
        primary = g % 2 == 0
        samples += [
            Sample(
                k * S,
                str(g),
                300.0 if primary else None,
                300.0 * k if primary else 0.0,
                secondary=not primary,
            )
            for k in range(3)
        ]
    sec = secondary_devices(samples)
    assert sec == {"1", "3", "5", "7"}
    energies = {str(g): 600.0 for g in range(0, 8, 2)}
    node = attribute("n1", energies, sec, {"0", "1", "2"})
    assert node.gcds_used_per_package() == {"0": 2, "2": 1, "4": 0, "6": 0}
    assert node.energy_j == pytest.approx(1200.0)  # packages 0 and 2, whole
    assert any("used 1 of its 2" in w for w in node.warnings)
    assert attribute("n1", energies, sec, None).energy_j == pytest.approx(2400.0)


def test_primary_with_na_power_is_not_secondary() -> None:
    samples = [Sample(0, "0", None, 5.0), Sample(0, "1", None, 0.0)]
    assert secondary_devices(samples) == {"1"}
    assert secondary_devices([Sample(0, "0", None, None), Sample(0, "1", None, None)]) == set()
