"""The JSON files of a run folder that ``phantom-energy extract`` reads, checked in one place:
``manifest.json`` and every ``power/<host>.sampler.json``. Each field extract uses must have
the type it is used as; otherwise :class:`InputError` names the file and key in one line
(``RUN/manifest.json: key 'config' is not an object``), before anything is written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad input to the CLI (the message names the file)."""


def load_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`InputError` naming it when it is none."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _bad(path: Path, key: str, what: str, value: object) -> InputError:
    return InputError(f"{path}: key {key!r} is not {what}: {json.dumps(value)[:60]}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def check_manifest(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """``data`` (``manifest.json``) when the keys extract reads are usable: ``config`` an
    object, ``world_size`` (or ``config.world_size``) a whole number >= 1, ``config.batch_size``
    a number >= 0, ``hosts`` a list of names (or an object keyed by name), ``rank_devices`` a
    list of objects whose ``rank`` is a whole number and ``host`` a name. Absent or null keys
    are fine (the report says what it assumed)."""
    cfg = data.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise _bad(path, "config", "an object", cfg)
    cfg = cfg or {}
    for key, v in (
        ("world_size", data.get("world_size")),
        ("config.world_size", cfg.get("world_size")),
    ):
        if v is not None and not (_is_int(v) and v >= 1):
            raise _bad(path, key, "a whole number >= 1", v)
    bs = cfg.get("batch_size")
    if bs is not None and not (_is_number(bs) and bs >= 0):
        raise _bad(path, "config.batch_size", "a number >= 0", bs)
    hosts = data.get("hosts")
    if hosts is not None and not (isinstance(hosts, dict) or _str_list(hosts)):
        raise _bad(path, "hosts", "a list of host names", hosts)
    ranks = data.get("rank_devices")
    if ranks is not None and not isinstance(ranks, list):
        raise _bad(path, "rank_devices", "a list", ranks)
    for k, e in enumerate(ranks or []):
        key = f"rank_devices[{k}]"
        if not isinstance(e, dict):
            raise _bad(path, key, "an object", e)
        if e.get("rank") is not None and not _is_int(e["rank"]):
            raise _bad(path, f"{key}.rank", "a whole number", e["rank"])
        if e.get("host") is not None and not isinstance(e["host"], str):
            raise _bad(path, f"{key}.host", "a host name", e["host"])
    return data


def check_sampler_meta(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """``meta`` (``<host>.sampler.json``) when the keys extract reads are usable: ``log`` a
    file name in the same folder, ``host``, ``source``, ``log_format`` strings,
    ``interval_s`` a finite number > 0, ``device_bus_ids`` an object, ``skipped_sources`` a
    list of strings. Absent or null keys are fine."""
    log = meta.get("log")
    if log is not None and not (isinstance(log, str) and "/" not in log and log not in (".", "..")):
        raise _bad(path, "log", f"a file name in {path.parent}", log)
    for key in ("host", "source", "log_format"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise _bad(path, key, "a string", meta[key])
    iv = meta.get("interval_s")
    if iv is not None and not (_is_number(iv) and iv > 0):
        raise _bad(path, "interval_s", "a number of seconds > 0", iv)
    ids = meta.get("device_bus_ids")
    if ids is not None and not isinstance(ids, dict):
        raise _bad(path, "device_bus_ids", "an object", ids)
    skipped = meta.get("skipped_sources")
    if skipped is not None and not _str_list(skipped):
        raise _bad(path, "skipped_sources", "a list of strings", skipped)
    return meta
