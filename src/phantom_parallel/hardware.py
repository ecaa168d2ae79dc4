"""Hardware profiles: sourced constants of one device kind and its node, read from YAML.

A profile is ``config/hardware/<name>.yaml``; ``config/hardware/schema.yaml`` lists the required
and optional constants and their units. Every constant is ``{value, unit, source, range: [lo,
hi]}``: ``source`` names a public document (with section) or the command that measured or fitted
it; ``range`` bounds the value and drives the projection's uncertainty bands. Units are SI as in
the schema (s, B, B/s, FLOP/s, W; ``1`` for fractions; ``device`` for counts).

Bad input raises :class:`ProfileError` with one line naming the file, the key and the value,
before anything is computed or written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

HARDWARE_DIR = Path(__file__).resolve().parents[2] / "config" / "hardware"
"""Folder of the committed profiles and their schema."""

FRACTIONS = ("gemm_efficiency", "memory_efficiency")
"""Constants that are fractions, so must lie in (0, 1]."""


class ProfileError(ValueError):
    """A profile file is unknown, unreadable or breaks the schema (one-line message)."""


@dataclasses.dataclass(frozen=True)
class Constant:
    """One sourced constant: ``value`` in ``unit``, with ``range = (lo, hi)``."""

    value: float
    unit: str
    source: str
    range: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Profile:
    """A validated hardware profile: ``constants[key]`` is a :class:`Constant`."""

    name: str
    description: str
    path: Path
    constants: dict[str, Constant]

    def __getitem__(self, key: str) -> float:
        """The value of constant ``key`` (in the schema's unit)."""
        return self.constants[key].value

    def get(self, key: str, default: float | None = None) -> float | None:
        """The value of an optional constant, or ``default``."""
        c = self.constants.get(key)
        return default if c is None else c.value

    def with_values(self, **values: float) -> Profile:
        """A copy with some values replaced (ranges and sources kept; for bands/sensitivity)."""
        consts = dict(self.constants)
        for key, v in values.items():
            consts[key] = dataclasses.replace(consts[key], value=float(v))
        return dataclasses.replace(self, constants=consts)


def schema(path: Path | None = None) -> dict[str, dict[str, str]]:
    """``{"required": {key: unit}, "optional": {key: unit}}`` from ``schema.yaml``."""
    data = yaml.safe_load((path or HARDWARE_DIR / "schema.yaml").read_text())
    return {"required": dict(data["required"]), "optional": dict(data.get("optional") or {})}


def available(folder: Path = HARDWARE_DIR) -> list[str]:
    """Names of the profiles in ``folder`` (file stems, schema excluded)."""
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "schema")


def _number(file: Path, key: str, what: str, v: Any) -> float:
    if isinstance(v, str):  # YAML 1.1 reads 4.8e12 (no dot, no sign) as a string
        with contextlib.suppress(ValueError):
            v = float(v)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ProfileError(f"{file}: constants.{key}.{what}: not a finite number: {v!r}")
    return float(v)


def _constant(file: Path, key: str, raw: Any, unit: str) -> Constant:
    if not isinstance(raw, dict):
        raise ProfileError(f"{file}: constants.{key}: expected a mapping with value, unit, "
                           f"source, range; got {raw!r}")
    extra = set(raw) - {"value", "unit", "source", "range"}
    if extra:
        raise ProfileError(f"{file}: constants.{key}: unknown fields {sorted(extra)}")
    for field in ("value", "unit", "source", "range"):
        if field not in raw or raw[field] in (None, ""):
            raise ProfileError(f"{file}: constants.{key}.{field}: missing "
                               f"(value = {raw.get('value')!r})")
    value = _number(file, key, "value", raw["value"])
    if str(raw["unit"]) != unit:
        raise ProfileError(f"{file}: constants.{key}.unit: {raw['unit']!r}, schema says {unit!r}")
    source = str(raw["source"]).strip()
    if len(source) < 8:
        raise ProfileError(f"{file}: constants.{key}.source: too short to name a document or "
                           f"command: {source!r} (value = {value!r})")
    rng = raw["range"]
    if not isinstance(rng, list) or len(rng) != 2:
        raise ProfileError(f"{file}: constants.{key}.range: expected [lo, hi], got {rng!r}")
    lo, hi = (_number(file, key, "range", v) for v in rng)
    if value < 0 or lo < 0:
        raise ProfileError(f"{file}: constants.{key}: negative value {value!r} or range {rng!r}")
    if not lo <= value <= hi:
        raise ProfileError(f"{file}: constants.{key}: value {value!r} outside its range {rng!r}")
    if key in FRACTIONS and not 0 < lo <= hi <= 1:
        raise ProfileError(f"{file}: constants.{key}: a fraction must lie in (0, 1], "
                           f"got value {value!r} range {rng!r}")
    if unit not in ("1", "device") and key != "node_baseline_w" and lo == 0:
        raise ProfileError(f"{file}: constants.{key}: range {rng!r} must exclude 0")
    return Constant(value, unit, source, (lo, hi))


def load(name_or_path: str | Path, folder: Path = HARDWARE_DIR) -> Profile:
    """Read and validate a profile by name (``config/hardware/<name>.yaml``) or path.

    Raises:
        ProfileError: unknown name, unreadable YAML, a missing/unknown constant, a constant
            without a source, a wrong unit, a negative value or one outside its range.
    """
    text = str(name_or_path)
    file = Path(text) if text.endswith((".yaml", ".yml")) else folder / f"{text}.yaml"
    if not file.is_file():
        raise ProfileError(f"--hardware {text!r}: unknown profile (no file {file}); "
                           f"known: {', '.join(available(folder))}")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise ProfileError(f"{file}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("constants"), dict):
        raise ProfileError(f"{file}: expected a mapping with name, description, constants")
    if data.get("name") != file.stem:
        raise ProfileError(f"{file}: name: {data.get('name')!r} differs from the file name "
                           f"{file.stem!r}")
    spec = schema(folder / "schema.yaml")
    units = {**spec["optional"], **spec["required"]}
    raw = data["constants"]
    for key in spec["required"]:
        if key not in raw:
            raise ProfileError(f"{file}: constants.{key}: missing (required by schema.yaml)")
    for key in raw:
        if key not in units:
            raise ProfileError(f"{file}: constants.{key}: not in schema.yaml "
                               f"(value = {raw[key]!r})")
    consts = {key: _constant(file, key, raw[key], units[key]) for key in raw}
    return Profile(str(data["name"]), str(data.get("description", "")), file, consts)
