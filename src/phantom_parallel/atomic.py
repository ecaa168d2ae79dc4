"""Crash-safe file writes (a reader sees the old file or the new one, never half of one), and
the one reader of the JSON files they write that names a broken file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder, fsync and rename: a
    reader sees the old file or the new one. A failed write leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as fh:  # the text as given, no newline translation
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON value stored in ``path``.

    Raises:
        FileNotFoundError: no such file (and other ``OSError``).
        ValueError: the file is not JSON; one line naming the file and where parsing failed.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}: line {err.lineno} column "
                         f"{err.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text)") from None


def folder_problem(path: str | Path) -> str | None:
    """What stops this process from creating (or writing into) the folder ``path``, in a few
    words naming the blocking path; None when nothing does.

    The nearest existing folder is probed by doing there what the write will do first (create a
    file when ``path`` exists, else a folder) and removing it at once: permission bits alone
    would pass folders that refuse new entries whatever their mode (``/proc``, ``/sys``, a
    read-only bind mount seen by root)."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocker is None:
        return None
    if not blocker.is_dir():
        return f"{blocker} is a file, not a folder"
    try:
        if blocker == path:
            fd, probe = tempfile.mkstemp(dir=blocker, prefix=".phantom-probe-")
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(dir=blocker, prefix=".phantom-probe-"))
    except OSError as err:
        return f"{blocker} is not writable ({err.strerror or err})"
    return None
