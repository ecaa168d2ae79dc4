"""Data model shared by all parsers: samples per device and issues per log line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    """One reading of one device.

    t_ns: wall-clock time of the reading, ns since the Unix epoch.
    device: device label as the tool names it (``"0"`` for ``GPU[0]``/``card0``/``gpu 0``,
        ``"package-0"`` for a RAPL zone).
    power_w: power in W, ``None`` when missing.
    energy_j: cumulative energy counter in true joules (AMD counts x 2^-16 J,
        NVML mJ x 1e-3, RAPL µJ x 1e-6), ``None`` when missing.
    wrap_j: the counter's wrap-around range in J when known (RAPL ``max_energy_range_uj``).
    secondary: the tool marked this device as an MI250X secondary die in this reading.
    epoch: counter epoch; a change between two readings is a counter restart (Cray
        pm_counters ``generation``/``startup``), handled like a reset.
    """

    t_ns: int
    device: str
    power_w: float | None = None
    energy_j: float | None = None
    wrap_j: float | None = None
    secondary: bool = False
    epoch: int = 0


@dataclass
class PollRecord:
    """What one poll said about each device it named.

    t_ns: the poll's time (ns since the epoch), ``None`` when it has none.
    line: 1-based line of the poll's first line (its stamp when stamped).
    status: device -> ``""`` when the poll gave a reading, else why not (``"power N/A"``).
    partial: device -> what was missing from a reading that was kept (``"power N/A"``).
    errors: the tool's error lines inside this poll (causes of absent devices).
    """

    t_ns: int | None
    line: int
    status: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LineIssue:
    """A log line that was not data: ``kind`` is ``error`` (tool error message),
    ``garbage`` (unrecognised), ``truncated`` (incomplete last poll) or ``lost``
    (a poll without data)."""

    path: str
    line: int
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.text[:120]}"


@dataclass
class ParseResult:
    """Everything a parser got out of one log."""

    path: str
    fmt: str
    samples: list[Sample] = field(default_factory=list)
    issues: list[LineIssue] = field(default_factory=list)
    polls: int = 0
    lost_polls: int = 0
    warnings: list[str] = field(default_factory=list)
    records: list[PollRecord] = field(default_factory=list)
    #: devices the log itself says exist (a header, a file list), read or not.
    declared: set[str] = field(default_factory=set)
    #: device -> PCI bus id, when the log names it.
    bus_ids: dict[str, str] = field(default_factory=dict)

    def issue(self, line: int, kind: str, text: str) -> None:
        """Record a non-data line (1-based line number)."""
        self.issues.append(LineIssue(self.path, line, kind, text.rstrip("\r\n")))

    def counts(self) -> dict[str, int]:
        """Number of issues per kind."""
        out: dict[str, int] = {}
        for i in self.issues:
            out[i.kind] = out.get(i.kind, 0) + 1
        return out
