"""What every live power source is (:class:`Source`) and the error a source raises when it
does not work on this machine (:class:`SourceError`); the sources themselves are in
:mod:`.sources` (and :mod:`.cray` for Cray EX pm_counters)."""

from __future__ import annotations

from typing import Protocol


class SourceError(RuntimeError):
    """A source does not work on this machine (the message says why)."""


class Source(Protocol):
    """One live source."""

    name: str
    fmt: str
    header: str

    def poll(self) -> str:
        """Read all devices once; return the text to append to the log."""
        ...

    def describe(self) -> str:
        """Human-readable command or interface used."""
        ...

    def close(self) -> None:
        """Release the interface."""
        ...
