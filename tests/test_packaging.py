"""The pins in envs/ are the pins of pyproject.toml (one set of tested versions, no drift)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _pins(project["dependencies"])
    extras = _pins([d for group in ("test", "workflow") for d in project["optional-dependencies"][group]])
    return core, extras


def test_requirements_txt_pins_match_pyproject() -> None:
    core, extras = _pyproject()
    req = _pins((ROOT / "envs" / "requirements.txt").read_text().splitlines())
    assert {**core, **extras} == req


def test_conda_environment_pins_match_pyproject() -> None:
    core, extras = _pyproject()
    env = yaml.safe_load((ROOT / "envs" / "phantom.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = _pins(pip)
    assert core.items() <= pins.items(), "every core dependency, same version"
    assert all({**core, **extras}.get(name) == version for name, version in pins.items())


def test_license_is_spdx_with_license_file() -> None:
    """PEP 639 metadata (no deprecated license table), the LICENSE file it names, and CITATION.cff agree."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["license"] == "BSD-3-Clause", "an SPDX expression, not a table"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Neither the name of the copyright holder nor the names of its" in text
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["license"] == project["license"]
    # license = "<SPDX>" and license-files need setuptools >= 77 as the build backend
    setuptools = next(r for r in meta["build-system"]["requires"] if r.startswith("setuptools"))
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert m and int(m.group(1)) >= 77, setuptools
