"""Hardware profiles: sourced constants of one device kind and its node, read from YAML.

A profile is ``config/hardware/<name>.yaml``; ``config/hardware/schema.yaml`` lists the required
and optional constants and their units. Every constant is ``{value, unit, source, range: [lo,
hi]}``: ``source`` names a public document (with section) or the command that measured or fitted
it; ``range`` bounds the value and drives the projection's uncertainty bands. Units are SI as in
the schema (s, B, B/s, FLOP/s, W; ``1`` for fractions; ``device`` for counts).

A profile may also carry ``gemm_table``: GEMM shapes timed on the profile's device
(``{source, rows: [[M, K, N, dtype, seconds], ...]}``, written by ``phantom-emulate
--gemm-table``); the time model then takes each GEMM's efficiency from the nearest measured
shape of the same element size instead of ``gemm_efficiency`` (:func:`phantom_parallel.timing.gemm_efficiency`).

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

from phantom_parallel.constants import DTYPE_BYTES

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
class GemmPoint:
    """One measured GEMM: ``(m x k) @ (k x n)`` of ``elem_bytes``-byte elements took ``seconds``."""

    m: int
    k: int
    n: int
    elem_bytes: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class Profile:
    """A validated hardware profile: ``constants[key]`` is a :class:`Constant`; ``gemm_table``
    the GEMMs measured on the device (may be empty), ``gemm_table_source`` how."""

    name: str
    description: str
    path: Path
    constants: dict[str, Constant]
    gemm_table: tuple[GemmPoint, ...] = ()
    gemm_table_source: str = ""

    def __getitem__(self, key: str) -> float:
        """The value of constant ``key`` (in the schema's unit)."""
        return self.constants[key].value

    def get(self, key: str, default: float | None = None) -> float | None:
        """The value of an optional constant, or ``default``."""
        c = self.constants.get(key)
        return default if c is None else c.value

    def nearest_gemm(self, m: int, k: int, n: int, elem_bytes: int) -> GemmPoint | None:
        """The measured GEMM of ``elem_bytes`` elements closest to ``(m, k, n)`` (sum of
        ``|log|`` ratios of the three sizes), or ``None`` when none of that size was measured."""
        same = [g for g in self.gemm_table if g.elem_bytes == elem_bytes]
        if not same:
            return None
        return min(same, key=lambda g: (abs(math.log(g.m / m)) + abs(math.log(g.k / k))
                                        + abs(math.log(g.n / n)), g.m, g.k, g.n))

    def with_gemm_table(self, points: tuple[GemmPoint, ...], source: str) -> Profile:
        """A copy whose measured GEMMs are ``points`` (measured as ``source`` says)."""
        return dataclasses.replace(self, gemm_table=tuple(points), gemm_table_source=source)

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


def _number(file: Path, where: str, v: Any) -> float:
    if isinstance(v, str):  # YAML 1.1 reads 4.8e12 (no dot, no sign) as a string
        with contextlib.suppress(ValueError):
            v = float(v)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ProfileError(f"{file}: {where}: not a finite number: {v!r}")
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
    value = _number(file, f"constants.{key}.value", raw["value"])
    if str(raw["unit"]) != unit:
        raise ProfileError(f"{file}: constants.{key}.unit: {raw['unit']!r}, schema says {unit!r}")
    source = str(raw["source"]).strip()
    if len(source) < 8:
        raise ProfileError(f"{file}: constants.{key}.source: too short to name a document or "
                           f"command: {source!r} (value = {value!r})")
    rng = raw["range"]
    if not isinstance(rng, list) or len(rng) != 2:
        raise ProfileError(f"{file}: constants.{key}.range: expected [lo, hi], got {rng!r}")
    lo, hi = (_number(file, f"constants.{key}.range", v) for v in rng)
    if value < 0 or lo < 0:
        raise ProfileError(f"{file}: constants.{key}: negative value {value!r} or range {rng!r}")
    if not lo <= value <= hi:
        raise ProfileError(f"{file}: constants.{key}: value {value!r} outside its range {rng!r}")
    if key in FRACTIONS and not 0 < lo <= hi <= 1:
        raise ProfileError(f"{file}: constants.{key}: a fraction must lie in (0, 1], "
                           f"got value {value!r} range {rng!r}")
    if unit not in ("1", "device") and key != "node_baseline_w" and lo == 0:
        raise ProfileError(f"{file}: constants.{key}: range {rng!r} must exclude 0")
    if unit == "device" and not (value == int(value) and lo >= 1 and lo == int(lo)
                                 and hi == int(hi)):
        raise ProfileError(f"{file}: constants.{key}: a count of devices must be a whole "
                           f"number >= 1, got value {value!r} range {rng!r}")
    return Constant(value, unit, source, (lo, hi))


def _gemm_table(file: Path, raw: Any) -> tuple[tuple[GemmPoint, ...], str]:
    """Validated ``gemm_table`` of a profile: ``{source, rows: [[M, K, N, dtype, seconds]]}``."""
    if not isinstance(raw, dict) or set(raw) != {"source", "rows"}:
        raise ProfileError(f"{file}: gemm_table: expected a mapping with source and rows, got "
                           f"{raw!r:.80}")
    source = str(raw["source"] or "").strip()
    if len(source) < 8:
        raise ProfileError(f"{file}: gemm_table.source: too short to name the command that "
                           f"measured it: {source!r}")
    if not isinstance(raw["rows"], list) or not raw["rows"]:
        raise ProfileError(f"{file}: gemm_table.rows: expected a non-empty list, got "
                           f"{raw['rows']!r:.80}")
    points = []
    for i, row in enumerate(raw["rows"]):
        key = f"gemm_table.rows[{i}]"
        if not isinstance(row, list) or len(row) != 5:
            raise ProfileError(f"{file}: {key}: expected [M, K, N, dtype, seconds], got {row!r}")
        *sizes, dtype, seconds = row
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes):
            raise ProfileError(f"{file}: {key}: M, K, N must be positive integers, got {row!r}")
        if dtype not in DTYPE_BYTES:
            raise ProfileError(f"{file}: {key}: dtype {dtype!r} is not one of "
                               f"{', '.join(DTYPE_BYTES)}")
        seconds = _number(file, f"{key} seconds", seconds)
        if seconds <= 0:
            raise ProfileError(f"{file}: {key}: seconds must be > 0, got {seconds!r}")
        points.append(GemmPoint(*sizes, DTYPE_BYTES[dtype], seconds))
    return tuple(points), source


def _first_line(err: Exception) -> str:
    """The first line of ``err`` and, for a YAML error, where it is (``line L, column C``)."""
    mark = getattr(err, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{str(err).splitlines()[0]}{where}"


def read_gemm_tables(paths: list[Path]) -> tuple[tuple[GemmPoint, ...], str]:
    """The measured GEMMs of the ``gemm_table`` files ``paths`` (as ``phantom-emulate
    --gemm-table`` writes them), merged, and their sources joined by ``; ``."""
    points: list[GemmPoint] = []
    sources = []
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ProfileError(f"{path}: cannot read a gemm_table: {_first_line(err)}") from None
        if not isinstance(data, dict) or "gemm_table" not in data:
            raise ProfileError(f"{path}: gemm_table: missing (expected phantom-emulate "
                               "--gemm-table output)")
        more, source = _gemm_table(Path(path), data["gemm_table"])
        points += more
        sources.append(source)
    return tuple(points), "; ".join(sources)


def load(name_or_path: str | Path, folder: Path = HARDWARE_DIR) -> Profile:
    """Read and validate a profile by name (``config/hardware/<name>.yaml``) or path.

    Raises:
        ProfileError: unknown name, unreadable YAML, a missing/unknown constant, a constant
            without a source, a wrong unit, a negative value or one outside its range, a
            malformed ``gemm_table``.
    """
    text = str(name_or_path)
    file = Path(text) if text.endswith((".yaml", ".yml")) else folder / f"{text}.yaml"
    if not file.is_file() and Path(text).is_file():
        raise ProfileError(f"--hardware {text!r}: a profile file's name ends in .yaml or .yml")
    if not file.is_file():
        raise ProfileError(f"--hardware {text!r}: unknown profile (no file {file}); "
                           f"known: {', '.join(available(folder))}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError(f"{file}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ProfileError(f"{file}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ProfileError(f"{file}: not valid YAML: {_first_line(err)}") from None
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
    extra = set(data) - {"name", "description", "constants", "gemm_table"}
    if extra:
        raise ProfileError(f"{file}: unknown top-level keys {sorted(extra)}")
    consts = {key: _constant(file, key, raw[key], units[key]) for key in raw}
    table, table_source = _gemm_table(file, data["gemm_table"]) if "gemm_table" in data else ((), "")
    return Profile(str(data["name"]), str(data.get("description", "")), file, consts, table,
                   table_source)
