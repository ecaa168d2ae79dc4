"""Checks of ``phantom-energy``'s flags that must pass before anything is written: an output
folder that can be created (or is fresh, for ``sample``), a command that resolves, watts and
intervals that are finite numbers. Each failure is an :class:`~.run_folder.InputError` whose
one-line message names the flag."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from phantom_parallel.atomic import folder_problem

from .run_folder import InputError, check_watts


def writable_folder(flag: str, path: Path, *, fresh: bool = False) -> None:
    """``path`` is a folder that exists or can be created, and is writable.

    fresh: it must also be empty or absent (``sample`` writes a new run folder: one in an old
    one would add a second window to its ``events.jsonl``).
    """
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{flag} {path}: exists and is not a folder")
        if fresh and any(path.iterdir()):
            raise InputError(
                f"{flag} {path}: exists and is not empty (a second command would add its "
                "window to the energy of the first); give a new folder"
            )
        if (problem := folder_problem(path)) is not None:  # probed, not permission bits
            raise InputError(f"{flag} {path}: {problem}")
        return
    if (problem := folder_problem(path.absolute())) is not None:
        raise InputError(f"{flag} {path}: cannot be created ({problem})")


def command(cmd: list[str]) -> list[str]:
    """The command after ``--``, unchanged, once its program resolves (``shutil.which``: on
    ``PATH``, or a path to an executable file)."""
    if not cmd:
        raise InputError("give the command to run after --: sample --out DIR -- CMD ...")
    if shutil.which(cmd[0]) is None:
        raise InputError(f"command {cmd[0]!r}: not found on PATH or not executable")
    return cmd


def busy_idle(busy: float | None, idle: float | None) -> None:
    """``--busy-watts`` and ``--idle-watts`` are valid, and idle is not above busy."""
    if busy is not None:
        check_watts(busy, "--busy-watts")
    if idle is not None:
        check_watts(idle, "--idle-watts")
    if busy is not None and idle is not None and idle > busy:
        raise InputError(
            f"--idle-watts {idle}: above --busy-watts {busy} (a busy device draws at least "
            "its idle power)"
        )


def positive(flag: str, value: float, unit: str) -> float:
    """``value`` when it is finite and > 0, else the error naming ``flag``."""
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{flag} {value}: must be a finite number > 0 {unit}")
    return value
