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
