"""Cray pm_counters: log formats, devices-only vs whole-node energy, restarts, staleness,
missing / unreadable / malformed files, and the live source on a fake folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phantom_parallel.energy.cray import PmCountersSource
from phantom_parallel.energy.formats import parse, sniff
from phantom_parallel.energy.measure import LogInput
from phantom_parallel.energy.report import Work, measured_report, write_report
from phantom_parallel.energy.sources import AUTO_ORDER, POWER_SOURCES, SourceError, resolve
from phantom_parallel.energy.windows import windows_from_events

from .conftest import FIXTURES

SPEC = json.loads((FIXTURES / "pm.json").read_text())


def _report(logs: list[LogInput], window: list[int], used=None):
    a, b = window
    w = windows_from_events(
        [{"t_ns": a, "event": "measure_start"}, {"t_ns": b, "event": "measure_end"}]
    )
    return measured_report(logs, w, Work(), used)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_pm_fixture_devices_only_and_whole_node_apart(name: str, tmp_path: Path) -> None:
    spec = SPEC[name]
    assert sniff(FIXTURES / name) == "pm-counters"
    rep = _report([LogInput("n1", FIXTURES / name)], spec["window_ns"])
    assert rep is not None
    assert rep["total_j"] == pytest.approx(spec["devices_only_j"])
    assert rep["per_node_j"] == {"n1": pytest.approx(spec["devices_only_j"])}
    assert rep["per_node_whole_j"] == {"n1": pytest.approx(spec["whole_node_j"])}
    assert rep["whole_node_total_j"] == pytest.approx(spec["whole_node_j"])
    for dev, joules in spec["devices"].items():
        assert rep["per_device_j"][f"n1/{dev}"] == pytest.approx(joules), dev
    rows = {d["device"]: d for d in rep["devices"]}
    assert {d for d, r in rows.items() if r["counted"]} == {
        d for d in rows if d.startswith("accel")
    }
    assert rows["node"]["role"] == "node" and rows["cpu"]["role"] == "cpu"
    assert sorted(d.split("/")[1] for d in rep["flagged_devices"]) == spec["flagged"]
    for dev, n in spec.get("partial", {}).items():
        assert rows[dev]["polls_partial"] == n
    _, csv_path = write_report(rep, tmp_path)
    scopes = [line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]]
    assert scopes.count("node") == 1 and scopes.count("node_whole") == 1


def test_restart_is_warned_and_filled() -> None:
    rep = _report(
        [LogInput("n1", FIXTURES / "pm_sampler.log")], SPEC["pm_sampler.log"]["window_ns"]
    )
    assert any(
        "generation/startup changed" in w and "pm_sampler.log:" in w for w in rep["warnings"]
    )
    assert any("n1: device accel0: counter restart" in w for w in rep["warnings"])


def test_missing_accelerator_stale_and_malformed_are_named() -> None:
    spec = SPEC["pm_grep.log"]
    r = parse(FIXTURES / "pm_grep.log")
    assert any("accel2: no accel2_energy" in w for w in r.warnings)
    bad = [i for i in r.issues if i.kind == "garbage"]
    assert len(bad) == 1 and bad[0].text.startswith("accel0_power:")  # caps/version skipped
    rep = _report([LogInput("n1", FIXTURES / "pm_grep.log")], spec["window_ns"])
    rows = {d["device"]: d for d in rep["devices"]}
    assert rows["accel2"]["polls_read"] == 0 and rows["accel2"]["method"] == "none"
    assert rows["node"]["coverage"] < 1 and rows["node"]["flagged"]
    stale = [w for w in rep["warnings"] if "stale: freshness" in w]
    assert stale and f"pm_grep.log:{spec['stale_line']}" in stale[0]


def test_gpu_log_gives_devices_only_pm_gives_whole_node() -> None:
    window = [(1741101302 + 1) * 10**9, (1741101302 + 4) * 10**9]
    logs = [
        LogInput("n1", FIXTURES / "pm_sampler.log"),
        LogInput("n1", FIXTURES / "rocm6_text.log"),
    ]
    rep = _report(logs, window)
    assert rep["per_node_j"] == {"n1": pytest.approx(600.0)}  # the rocm-smi package only
    assert rep["per_node_whole_j"]["n1"] == pytest.approx(1800.0 * 3)
    accel = [d for d in rep["devices"] if d["device"].startswith("accel")]
    assert accel and not any(d["counted"] for d in accel)


def test_used_gcds_select_accelerators() -> None:
    spec = SPEC["pm_sampler.log"]
    rep = _report([LogInput("n1", FIXTURES / "pm_sampler.log")], spec["window_ns"], {"n1": {"2"}})
    assert rep["total_j"] == pytest.approx(spec["devices"]["accel1"])  # GCD 2 is on accel1


def make_pm_root(root: Path) -> Path:
    """A fake /sys/cray/pm_counters: accel1_energy is a folder (unreadable), accel0_power
    malformed, accel2 files absent (accel3 present)."""
    root.mkdir(parents=True)
    files = {
        "freshness": "77",
        "generation": "3",
        "startup": "1741000000",
        "energy": "5000 J 1741101302000123 us",
        "power": "900 W 1741101302000123 us",
        "cpu_energy": "1000 J 1741101302000123 us",
        "cpu_power": "200 W 1741101302000123 us",
        "memory_energy": "300 J 1741101302000123 us",
        "memory_power": "50 W 1741101302000123 us",
        "accel0_energy": "700 J 1741101302000123 us",
        "accel0_power": "garbage",
        "accel1_power": "300 W 1741101302000123 us",
        "accel3_energy": "400 J 1741101302000123 us",
        "accel3_power": "250 W 1741101302000123 us",
        "version": "2",
    }
    for name, text in files.items():
        (root / name).write_text(text + "\n")
    (root / "accel1_energy").mkdir()
    return root


def test_live_source_reads_a_fake_folder(tmp_path: Path) -> None:
    root = make_pm_root(tmp_path / "pm")
    src = PmCountersSource(root)
    assert "accel2_energy" in src.files and any("accel2_energy" in w for w in src.warnings)
    log = tmp_path / "n1.pm_counters.log"
    log.write_text(src.header + src.poll())
    r = parse(log)
    assert r.fmt == "pm-counters"
    by = {s.device: s for s in r.samples}
    assert by["node"].energy_j == 5000 and by["accel3"].power_w == 250
    assert by["accel0"].energy_j == 700 and by["accel0"].power_w is None
    assert by["accel1"].power_w == 300 and by["accel1"].energy_j is None
    assert by["node"].t_ns == 1741101302000123000
    texts = [i.text for i in r.issues]
    assert any(t.startswith("accel1_energy: ") for t in texts)  # the folder: unreadable
    assert any(t.startswith("accel0_power: ") for t in texts)
    assert any(t.startswith("accel2_energy: missing") for t in texts)
    assert r.records[0].status["accel2"].startswith("accel2_energy: missing")


def test_source_names_defined_once_and_auto_tries_pm_first(tmp_path: Path) -> None:
    assert POWER_SOURCES[0] == "auto" and "pm_counters" in POWER_SOURCES
    assert AUTO_ORDER[0] == "pm_counters"
    with pytest.raises(SourceError, match="no such directory"):
        resolve("pm_counters", pm_counters_root=str(tmp_path / "absent"))
    root = make_pm_root(tmp_path / "pm")
    assert resolve("auto", pm_counters_root=str(root)) == ("pm_counters", [])


def test_sampler_child_reads_pm_counters(tmp_path: Path) -> None:
    """start_sampler('auto') on a Cray node: pm_counters first, the child process polls the
    injected folder, the meta records the missing accelerator file and no bus ids."""
    import time

    from phantom_parallel.energy.sampler import start_sampler

    root = make_pm_root(tmp_path / "pm")
    h = start_sampler("auto", tmp_path / "power", 0.05, host="n1", pm_counters_root=str(root))
    assert h.source == "pm_counters"
    time.sleep(0.5)
    h.stop()
    meta = json.loads((tmp_path / "power" / "n1.sampler.json").read_text())
    assert meta["log_format"] == "pm-counters" and meta["device_bus_ids"] == {}
    assert any("accel2_energy" in w for w in meta["source_warnings"])
    r = parse(tmp_path / "power" / meta["log"], meta["log_format"])
    assert {s.device for s in r.samples} >= {"node", "cpu", "memory", "accel0", "accel3"}
    assert len(r.records) >= 1  # same freshness every poll: later polls are repeats
