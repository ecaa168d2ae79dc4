"""Field names and conversions shared by the rocm-smi and amd-smi parsers."""

from __future__ import annotations

import re

from ..units import AMD_COUNT_J, AMD_TOOL_TO_TRUE, is_secondary_marker, parse_number

#: rocm-smi power keys: MI200/MI250X ``Average ...``, MI300 ``Current Socket ...``.
ROCM_POWER_KEY = re.compile(r"^(Average|Current Socket) Graphics Package Power \(W\)$")
ROCM_COUNTER_KEY = "Energy counter"
ROCM_ACC_KEY = "Accumulated Energy (uJ)"
#: amd-smi power fields, in order of preference (6.1+, 6.0, monitor).
AMD_POWER_KEYS = ("socket_power", "current_power", "power_usage", "power")
AMD_ENERGY_KEY = "total_energy_consumption"


class FieldError(ValueError):
    """A field's value cannot be read."""


def rocm_reading(fields: dict[str, str]) -> tuple[float | None, float | None, bool]:
    """Power (W), cumulative energy (true J) and secondary-die marker from rocm-smi fields.

    Energy comes from the raw ``Energy counter`` (x 2^-16 J, exact) when present, else from
    ``Accumulated Energy (uJ)`` corrected from the tool's 15.3 µJ per count to 2^-16 J.
    When both power keys are present, ``Current Socket`` wins (MI300).
    """
    power: float | None = None
    secondary = False
    keys = sorted((k for k in fields if ROCM_POWER_KEY.match(k)), key=lambda k: k[0] != "C")
    for key in keys:
        value = fields[key]
        if is_secondary_marker(value):
            secondary = True
            continue
        try:
            power = parse_number(value)
        except ValueError as exc:
            raise FieldError(f"{key}: {exc}") from exc
        if power is not None:
            break
    energy: float | None = None
    try:
        if ROCM_COUNTER_KEY in fields:
            counts = parse_number(fields[ROCM_COUNTER_KEY])
            energy = None if counts is None else counts * AMD_COUNT_J
        if energy is None and ROCM_ACC_KEY in fields:
            uj = parse_number(fields[ROCM_ACC_KEY])
            energy = None if uj is None else uj * 1e-6 * AMD_TOOL_TO_TRUE
    except ValueError as exc:
        raise FieldError(f"energy: {exc}") from exc
    return power, energy, secondary


def _value(v: object) -> float | None:
    if isinstance(v, dict):
        v = v.get("value")
    return parse_number(v)


def amd_smi_reading(power: object, energy: object) -> tuple[float | None, float | None]:
    """Power (W) and cumulative energy (true J) from amd-smi ``power``/``energy`` values.

    ``power``/``energy`` are the dicts of a JSON entry or flat dicts of CSV columns. Values
    may be bare (6.0) or ``{"value": v, "unit": u}`` (6.1+); ``N/A`` is missing. The tool's
    joules (count x 15.3 µJ) are corrected to 2^-16 J per count.
    """
    p: float | None = None
    try:
        if isinstance(power, dict):
            for key in AMD_POWER_KEYS:
                if key in power:
                    p = _value(power[key])
                    if p is not None:
                        break
        e = None
        if isinstance(energy, dict) and AMD_ENERGY_KEY in energy:
            e = _value(energy[AMD_ENERGY_KEY])
    except ValueError as exc:
        raise FieldError(str(exc)) from exc
    return p, None if e is None else e * AMD_TOOL_TO_TRUE
