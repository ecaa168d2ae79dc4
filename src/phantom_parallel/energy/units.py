"""Units of the power and energy sources, and tolerant parsing of numeric fields.

All energies in this package are joules (J), powers watts (W), times nanoseconds (ns)
since the Unix epoch unless a name says otherwise (``_s``, ``_uj``, ``_mj``).
"""

from __future__ import annotations

import math
import re

#: One raw AMD energy-counter count (rocm-smi ``Energy counter``), exactly 2^-16 J.
AMD_COUNT_J: float = 2.0**-16
#: What the AMD tools multiply a count by to print micro-joules (float32 15.3).
AMD_TOOL_UJ_PER_COUNT: float = 15.300000190734863
#: Factor that turns an AMD tool figure (µJ or J) into true joules: 2^-16 J / 15.3 µJ.
AMD_TOOL_TO_TRUE: float = AMD_COUNT_J / (AMD_TOOL_UJ_PER_COUNT * 1e-6)
#: NVML total-energy counter unit (mJ) and power unit (mW).
NVML_ENERGY_J: float = 1e-3
NVML_POWER_W: float = 1e-3
#: RAPL ``energy_uj`` unit.
RAPL_ENERGY_J: float = 1e-6
NS_PER_S: int = 1_000_000_000

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "none", "null", "nan"}


def parse_number(text: object) -> float | None:
    """Parse a numeric tool field; ``None`` for missing markers.

    Accepts floats in exponent notation, a trailing unit (``"231 W"``, ``"231.47 W"``,
    ``"783888888.719 J"``) and the missing markers ``N/A``, ``N/A (Secondary die)``,
    ``[N/A]``, ``[Not Supported]``.  Anything else raises :class:`ValueError`.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise ValueError(f"not a number: {text!r}")
    if isinstance(text, int | float):
        value = float(text)
        return None if math.isnan(value) else value
    s = str(text).strip()
    if s.lower() in _MISSING or s.upper().startswith("N/A"):
        return None
    parts = s.split()
    if len(parts) == 2 and re.fullmatch(r"[a-zA-Zµu%]+", parts[1]):
        s = parts[0]
    elif len(parts) != 1:
        raise ValueError(f"not a number: {text!r}")
    if not _NUMBER.match(s):
        raise ValueError(f"not a number: {text!r}")
    value = float(s)
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def is_secondary_marker(text: object) -> bool:
    """True for the rocm-smi ``N/A (Secondary die)`` marker of an MI250X secondary GCD."""
    return isinstance(text, str) and "secondary die" in text.lower()
