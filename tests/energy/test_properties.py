"""Property tests: garbage never crashes a parser; injected garbage is reported by line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phantom_parallel.energy.formats import FORMATS, parse

from .conftest import FIXTURES

FIXTURE_OF = {
    "rocm-smi-text": "rocm6_text.log",
    "rocm-smi-csv": "rocm61_csv.log",
    "rocm-smi-json": "rocm_mi300_json.log",
    "amd-smi-json": "amdsmi60.json.log",
    "amd-smi-csv": "amdsmi62_watch.csv.log",
    "amd-smi-text": "amdsmi62_watch.txt.log",
    "nvidia-smi-csv": "nvsmi.csv.log",
    "nvml-csv": "node1.nvml.log",
    "rapl-csv": "node1.rapl.log",
    "pm-counters": "pm_sampler.log",
}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
junk_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)


def _write(data: bytes | str) -> Path:
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as f:
        f.write(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return Path(f.name)


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(fmt: str, data: bytes) -> None:
    path = _write(data)
    try:
        result = parse(path, fmt)
        n = data.count(b"\n") + 1
        assert all(1 <= i.line <= n for i in result.issues)
    finally:
        path.unlink()


@SETTINGS
@given(
    fmt=st.sampled_from(FORMATS),
    inserts=st.lists(st.tuples(st.integers(0, 10**6), junk_text), min_size=1, max_size=5),
)
def test_injected_garbage_lines_are_reported(fmt: str, inserts: list[tuple[int, str]]) -> None:
    lines = (FIXTURES / FIXTURE_OF[fmt]).read_text().split("\n")
    complete = lines[:-1]
    # garbage: a line starting with "~" cannot be data in any format; insert at line ends
    # (in the JSON watch format only between documents, where a tool message could appear)
    slots = [i for i, s in enumerate(complete) if fmt != "amd-smi-json" or s.startswith(("[", "1"))]
    # insert from the last position backwards so the slot indices stay valid
    for pos, text in sorted(inserts, key=lambda x: -slots[x[0] % len(slots)]):
        at = slots[pos % len(slots)]
        garbage = "~" + "".join(
            ch for ch in text if ch not in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
        )
        complete.insert(at, garbage)
    body = "\n".join(complete) + "\n" + lines[-1]
    path = _write(body)
    try:
        result = parse(path, fmt)
    finally:
        path.unlink()
    reported = {i.line for i in result.issues if i.kind in ("garbage", "error")}
    garbage_lines = {n + 1 for n, s in enumerate(complete) if s.startswith("~")}
    assert garbage_lines <= reported
    clean = parse(FIXTURES / FIXTURE_OF[fmt], fmt)
    assert len(result.samples) == len(clean.samples)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(FORMATS),
    drops=st.lists(st.integers(0, 10**6), max_size=6),
    cut=st.integers(0, 10**6),
)
def test_damaged_logs_never_crash_and_never_hide_a_gap(
    fmt: str, drops: list[int], cut: int
) -> None:
    """Lines deleted and the file cut at any byte: the report never crashes, and a counted
    device whose coverage is below 100 % is flagged with a warning that names it."""
    from phantom_parallel.energy.measure import LogInput
    from phantom_parallel.energy.report import Work, measured_report
    from phantom_parallel.energy.windows import windows_from_events

    text = (FIXTURES / FIXTURE_OF[fmt]).read_text()
    lines = text.split("\n")
    for d in sorted({d % len(lines) for d in drops}, reverse=True):
        del lines[d]
    data = "\n".join(lines)
    data = data[: len(data) - cut % max(1, len(data) // 3)]
    path = _write(data)
    t0 = 1741101302 * 10**9
    w = windows_from_events(
        [
            {"t_ns": t0 + 10**9, "event": "measure_start"},
            {"t_ns": t0 + 3 * 10**9, "event": "measure_end"},
        ]
    )
    try:
        rep = measured_report([LogInput("n1", path, fmt)], w, Work())
    finally:
        path.unlink()
    for d in (rep or {}).get("devices", []):
        if d.get("coverage") is not None and d["coverage"] < 1 - 1e-9:
            assert d["flagged"], d
            assert any(f"device {d['device']}:" in x for x in rep["warnings"]), d
