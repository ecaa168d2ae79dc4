"""What ``phantom-emulate --resume`` keeps of a stopped run's ``--json``.

A run rewrites its ``--json`` after each p of ``--ranks`` (``"complete": false``), so a run
stopped by a time limit leaves the p it finished. ``--resume`` keeps those p, each one's rows
as they were measured (its strategies side by side, their energy integrated), and measures
only the others, when the file was written by the same measurement: the same options
(:func:`options`: every flag but ``--json``, ``--gemm-table`` and ``--resume``), the same
device and the same torch and phantom-parallel versions. A p whose energy was still pending
when the run stopped is measured again. No file at the path: nothing to keep; a complete
file: every p is kept (only ``--gemm-table``, if asked for, is measured).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from phantom_parallel.atomic import read_json
from phantom_parallel.emulate_step import ROW_KEYS

NOT_COMPARED = ("json", "gemm_table", "resume")
"""Options that do not change what a row measures."""


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The options a document records and a resumed run must repeat (JSON values)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in NOT_COMPARED}


def groups(args: argparse.Namespace) -> list[tuple[int, list[str]]]:
    """(p, strategies measured at p) in run order: serial only at the first p."""
    return [(p, [s for s in args.strategy if s != "serial" or p == args.ranks[0]])
            for p in args.ranks]


def _device(host: dict[str, Any]) -> Any:
    return host.get("gpu") or host.get("cpu")


def _read(path: Path) -> tuple[list[dict[str, Any]], list[int], dict[str, Any], list[Any]]:
    """(rows, ranks_done, options, [device, torch, phantom-parallel]) of a document.

    Raises:
        ValueError, KeyError, TypeError, AttributeError, OSError: not such a document.
    """
    doc = read_json(path)
    rows, done, before = doc["rows"], doc["ranks_done"], dict(doc["options"])
    if not all(isinstance(r["energy_method"], str) for r in rows):
        raise TypeError("a row's energy_method is not text")
    made = [_device(doc["host"]), doc["versions"]["torch"], doc["versions"]["phantom_parallel"]]
    return rows, [int(p) for p in done], before, made


def stopped_ranks(path: Path | None) -> list[int]:
    """The p a stopped run measured into ``path`` (a ``"complete": false`` document), else
    [] (no file, a finished run's file, or not a phantom-emulate file)."""
    if path is None or not path.is_file():
        return []
    try:
        doc = read_json(path)
        return [int(p) for p in doc["ranks_done"]] if doc.get("complete") is False else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def kept(args: argparse.Namespace, host: dict[str, Any], versions: dict[str, Any]
         ) -> tuple[dict[int, list[dict[str, Any]]], str | None]:
    """The rows of each finished p of ``args.json`` (``{p: rows}``) and None, or ``({}, the
    one-line error naming --resume)``. ``host``/``versions``: this run's, as the document's."""
    path: Path = args.json
    if not path.exists():
        return {}, None
    try:
        rows, done, before, made = _read(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return {}, f"--resume: {path} is not a resumable phantom-emulate file ({err!r})"
    now = options(args)
    for key in sorted(set(now) | set(before)):
        if now.get(key) != before.get(key):
            return {}, (f"--resume: {path} was measured with --{key.replace('_', '-')} "
                        f"{before.get(key)}, not {now.get(key)}")
    this = [_device(host), versions["torch"], versions["phantom_parallel"]]
    for what, old, new in zip(("device", "torch", "phantom-parallel"), made, this, strict=True):
        if old != new:
            return {}, f"--resume: {path} was measured with {what} {old}, this run has {new}"
    out, at = {}, 0
    for p, strategies in groups(args):
        if p not in done:
            break
        mine = rows[at:at + len(strategies)]
        for i, s in enumerate(strategies, start=at):
            row = rows[i] if i < len(rows) else None
            if not (isinstance(row, dict) and set(row) >= ROW_KEYS and row["strategy"] == s
                    and row["p"] == p):
                missing = sorted(ROW_KEYS - set(row)) if isinstance(row, dict) else []
                return {}, (f"--resume: {path} is not a resumable phantom-emulate file (rows[{i}]"
                            f" is not its {s} p = {p} row" + (f": no {', '.join(missing[:3])}"
                                                            if missing else "") + ")")
        at += len(strategies)
        if all(r["energy_method"] != "pending" for r in mine):
            out[p] = mine
    return out, None
