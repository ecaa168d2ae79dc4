"""Hardware profiles: every committed profile passes the schema; bad profiles fail with one line
naming the file, the key and the value; the fitted H200 constants are what the script fits."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phantom_parallel import hardware
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "config" / "hardware"


def test_committed_profiles_are_valid_and_sourced() -> None:
    names = hardware.available()
    assert names == ["frontier-mi250x", "local-cpu", "nvidia-h200"]
    spec = hardware.schema()
    for name in names:
        prof = hardware.load(name)
        assert set(spec["required"]) <= set(prof.constants)
        for key, c in prof.constants.items():
            assert c.range[0] <= c.value <= c.range[1], (name, key)
            assert len(c.source) >= 8 and c.unit == {**spec["optional"], **spec["required"]}[key]


def _profile(tmp: Path, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    """The H200 profile, renamed ``name`` and passed through ``change(data)``, in ``tmp``."""
    (tmp / "schema.yaml").write_text((HW / "schema.yaml").read_text())
    data = yaml.safe_load((HW / "nvidia-h200.yaml").read_text())
    data["name"] = name
    change(data)
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def _write(tmp: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    return _profile(tmp, "bad", lambda data: mutate(data["constants"]))


def _refused_in_one_line(f: Path, folder: Path, words: list[str]) -> None:
    with pytest.raises(hardware.ProfileError) as err:
        hardware.load(f, folder=folder)
    msg = str(err.value)
    assert "\n" not in msg and str(f) in msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda c: c.pop("hbm_bandwidth"), ["hbm_bandwidth", "missing"]),
    (lambda c: c["kernel_s"].pop("source"), ["kernel_s.source", "missing", "6e-06"]),
    (lambda c: c["power_idle_w"].update(value=-5.0), ["power_idle_w", "-5.0"]),
    (lambda c: c["power_busy_w"].update(value=900.0), ["power_busy_w", "900.0", "outside"]),
    (lambda c: c["gemm_efficiency"].update(range=[0.5, 1.5], value=1.2), ["gemm_efficiency",
                                                                         "1.2"]),
    (lambda c: c["hbm_bandwidth"].update(unit="GB/s"), ["hbm_bandwidth.unit", "GB/s"]),
    (lambda c: c.update(warp_drive={"value": 1, "unit": "1", "source": "fiction novel",
                                    "range": [0, 2]}), ["warp_drive", "not in schema"]),
    (lambda c: c["intra_latency"].update(value="fast"), ["intra_latency.value", "fast"]),
    (lambda c: c["devices_per_node"].update(value=0, range=[0, 8]), ["devices_per_node",
                                                                      "whole number >= 1"]),
    (lambda c: c["devices_per_node"].update(value=1.5, range=[1, 8]), ["devices_per_node",
                                                                        "1.5"]),
])
def test_bad_profile_one_line_naming_file_key_value(tmp_path: Path, mutate, words) -> None:  # type: ignore[no-untyped-def]
    _refused_in_one_line(_write(tmp_path, mutate), tmp_path, words)


def test_profile_with_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    f = _profile(tmp_path, "bad", lambda data: None)
    lines = f.read_text().splitlines()
    lines[2] += " : : oops: ["
    f.write_text("\n".join(lines) + "\n")
    _refused_in_one_line(f, tmp_path, ["not valid YAML", "line 3, column"])


def test_profile_that_is_not_utf8_text_is_refused_in_one_line(tmp_path: Path) -> None:
    f = _profile(tmp_path, "bad", lambda data: None)
    f.write_bytes(b"name: bad\n\xff\xfe x\n")
    _refused_in_one_line(f, tmp_path, ["not UTF-8 text"])
    table = tmp_path / "gemm_table_x.yaml"
    table.write_bytes(b"gemm_table: \xff\n")
    with pytest.raises(hardware.ProfileError, match=r"gemm_table_x.yaml: cannot read"):
        hardware.read_gemm_tables([table])


def test_profile_path_without_a_yaml_suffix_says_so(tmp_path: Path) -> None:
    f = tmp_path / "myprofile"
    f.write_text("name: myprofile\n")
    with pytest.raises(hardware.ProfileError, match=r"--hardware '.*myprofile'.*ends in \.yaml"):
        hardware.load(str(f))


def test_unknown_profile_names_the_flag_and_known_ones() -> None:
    with pytest.raises(hardware.ProfileError, match=r"--hardware 'h100'.*nvidia-h200"):
        hardware.load("h100")


def _validate_h200():  # type: ignore[no-untyped-def]
    return load_script("benchmarks/projection/validate_h200.py")


def test_h200_fitted_constants_are_what_the_script_fits() -> None:
    prof = hardware.load("nvidia-h200")
    fitted = _validate_h200().fit(prof)
    for key, value in fitted.items():
        assert prof[key] == pytest.approx(value, rel=0.01), key
        assert "validate_h200.py --fit" in prof.constants[key].source


# ------------------------------------------------------------------ measured GEMM table
def _with_table(tmp: Path, table) -> Path:  # type: ignore[no-untyped-def]
    return _profile(tmp, "table", lambda data: data.update(gemm_table=table))


GOOD_TABLE = {"source": "measured by phantom-emulate --gemm-table (test)",
              "rows": [[1024, 2048, 256, "float32", 2.0e-4], [1024, 256, 256, "float32", 1.0e-4],
                       [1024, 2048, 256, "bfloat16", 1.0e-5]]}


@pytest.mark.parametrize(("table", "words"), [
    ({"rows": GOOD_TABLE["rows"]}, ["gemm_table", "source and rows"]),
    ({**GOOD_TABLE, "source": "me"}, ["gemm_table.source", "'me'"]),
    ({**GOOD_TABLE, "rows": []}, ["gemm_table.rows", "non-empty"]),
    ({**GOOD_TABLE, "rows": [[1024, 2048, 256, "float32"]]}, ["gemm_table.rows[0]", "seconds"]),
    ({**GOOD_TABLE, "rows": [[1024, 0, 256, "float32", 1e-4]]}, ["gemm_table.rows[0]", "positive"]),
    ({**GOOD_TABLE, "rows": [[8, 8, 8, "float8", 1e-4]]}, ["gemm_table.rows[0]", "'float8'"]),
    ({**GOOD_TABLE, "rows": [[8, 8, 8, "float32", -1.0]]}, ["gemm_table.rows[0]", "-1.0"]),
    ({**GOOD_TABLE, "rows": [[8, 8, 8, "float32", "soon"]]}, ["gemm_table.rows[0]", "'soon'"]),
])
def test_bad_gemm_table_one_line_naming_file_key_value(tmp_path: Path, table, words) -> None:  # type: ignore[no-untyped-def]
    _refused_in_one_line(_with_table(tmp_path, table), tmp_path, words)


def test_measured_gemms_set_their_efficiency_nearest_shape_else_the_constant(tmp_path: Path) -> None:
    from phantom_parallel import calibration, timing

    hw = hardware.load(_with_table(tmp_path, GOOD_TABLE), folder=tmp_path)
    plain = hardware.load("nvidia-h200")
    assert len(hw.gemm_table) == 3 and "phantom-emulate" in hw.gemm_table_source
    # a measured, compute-bound shape takes exactly its measured time
    assert timing.gemm_s(1024, 2048, 256, 4, hw) == pytest.approx(2.0e-4)
    assert timing.gemm_s(1024, 2048, 256, 2, hw) == pytest.approx(1.0e-5)
    # an unmeasured shape takes the efficiency of the nearest measured one of its element size
    eff = 2 * 1024 * 2048 * 256 / (2.0e-4 * hw["peak_flops_fp32"])
    assert timing.gemm_efficiency(1024, 4096, 256, 4, hw) == pytest.approx(eff)
    eff_small = 2 * 1024 * 256 * 256 / (1.0e-4 * hw["peak_flops_fp32"])
    assert timing.gemm_efficiency(1024, 300, 256, 4, hw) == pytest.approx(eff_small)
    # no float64 GEMM was measured: the profile's stated efficiency
    assert timing.gemm_efficiency(1024, 2048, 256, 8, hw) == hw["gemm_efficiency"]
    assert timing.gemm_efficiency(1024, 2048, 256, 4, plain) == plain["gemm_efficiency"]
    # the table survives with_values (bands, sensitivity) and blocks fitting gemm_efficiency
    assert hw.with_values(kernel_s=1e-6).gemm_table == hw.gemm_table
    with pytest.raises(ValueError, match="gemm_table"):
        calibration.fit_rows(hw, ("gemm_efficiency",), [(lambda h: 1.0, 1.0)])


def test_gemm_table_files_merge_and_a_file_without_one_is_named(tmp_path: Path) -> None:
    a, b, bad = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "bad.yaml"
    a.write_text(yaml.safe_dump({"gemm_table": {**GOOD_TABLE, "rows": GOOD_TABLE["rows"][:1]}}))
    b.write_text(yaml.safe_dump({"gemm_table": {"source": "measured by command B",
                                                "rows": GOOD_TABLE["rows"][1:]}}))
    points, source = hardware.read_gemm_tables([a, b])
    assert len(points) == 3 and source == f"{GOOD_TABLE['source']}; measured by command B"
    assert hardware.load("nvidia-h200").with_gemm_table(points, source).gemm_table == points
    bad.write_text("rows: []\n")
    with pytest.raises(hardware.ProfileError, match=r"bad\.yaml: gemm_table: missing"):
        hardware.read_gemm_tables([a, bad])
