"""What every ``phantom-*`` console script shares: the parser (the description kept as written,
each option's default shown in ``--help``, ``--version``), and one definition of each check of
input that several of them take (layouts, devices, power sources, numeric minimums, output
files) with the one-line refusal, and the atomic write of their output files."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from phantom_parallel import __version__
from phantom_parallel.atomic import folder_problem, write_text_atomic

REFUSE_DELAY_S = 2.0


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Description verbatim; ``(default: ...)`` after every option that has a default its
    help does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for console script ``prog`` with the project's conventions."""
    ap = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_Formatter)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return ap


def layout_error(err: ValueError) -> str:
    """A :func:`phantom_parallel.layout.validate_layout` message in the CLI's flag names."""
    text = str(err).replace("ghosts k=", "--ghosts=").replace("width n=", "--width=")
    return text.replace("strategy 'serial'", "--strategy=serial")


def device_error(device: str, backend: str) -> str | None:
    """What is wrong with ``--device``/``--backend`` on this machine (None: nothing): an unknown
    device or backend, cuda without a GPU, NCCL (RCCL) with CPU tensors (it moves GPU tensors
    only) or where torch was built without it."""
    import torch
    import torch.distributed as dist

    from phantom_parallel.distributed import resolve_backend

    if not device.startswith(("cpu", "cuda")):
        return f"--device={device!r}: use cpu or cuda (ROCm GPUs are cuda in torch)"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "--device=cuda but torch sees no GPU"
    try:
        resolved = resolve_backend(backend, device)
    except ValueError as err:
        return f"--backend: {err}"
    if resolved == "nccl" and not device.startswith("cuda"):
        return (f"--backend={backend}: nccl needs --device=cuda; use --backend gloo (or auto) "
                f"with --device={device}")
    if resolved == "nccl" and not dist.is_nccl_available():
        return f"--backend={backend}: this torch has no NCCL/RCCL built in; use --backend gloo"
    return None


def refuse(prog: str, msg: str) -> NoReturn:
    """End with the one line ``prog: error: msg`` on stderr and exit status 2 (argparse's), before
    any work. Under a launcher, ranks other than a node's local rank 0 wait
    :data:`REFUSE_DELAY_S` first: that rank runs the same checks on the same input, says it
    first, and torchrun then ends the others, so a refusal reads once per node; a rank that
    alone finds the fault still says it."""
    from phantom_parallel.distributed import read_launch_env

    if read_launch_env().local_rank != 0:
        time.sleep(REFUSE_DELAY_S)
    print(f"{prog}: error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def minimum_error(values: Mapping[str, float | None], low: float, *,
                  strict: bool = False) -> str | None:
    """The first ``flag -> value`` of ``values`` that is below ``low`` (``strict``: not above
    it) or not finite, as ``--flag=value must be >= low``; None values (not given) pass."""
    for flag, value in values.items():
        if value is None:
            continue
        if not math.isfinite(value) or (value <= low if strict else value < low):
            return f"{flag}={value} must be {'>' if strict else '>='} {low:g}"
    return None


def ghosts_error(strategy: str, ghosts: int | None) -> str | None:
    """``pp`` without ``--ghosts`` (its layout rule would only report ``k=None``)."""
    if strategy == "pp" and ghosts is None:
        return "--strategy=pp needs --ghosts k (ghost neurons per rank)"
    return None


def output_error(flag: str, path: Path | None, *, mkdir: bool = False) -> str | None:
    """What is wrong with ``path`` as the file option ``flag`` writes (None: nothing, or no
    path), checked before any work: an existing folder or other non-regular file, a parent
    that is a file, a missing folder (allowed with ``mkdir``: :func:`write_output` creates it
    under the nearest existing folder), a folder this process cannot write. An existing file
    is replaced, atomically."""
    if path is None:
        return None
    if path.is_dir():
        return f"{flag} {path}: is a folder; name a file"
    if path.exists() and not path.is_file():
        return f"{flag} {path}: exists and is not a regular file"
    if (problem := folder_problem(path.parent)) is not None:
        return f"{flag} {path}: {problem}"
    if not mkdir and not path.parent.is_dir():
        return f"{flag} {path}: folder {path.parent} does not exist"
    return None


def write_output(flag: str, path: Path, text: str, *, mkdir: bool = False) -> str | None:
    """Write ``text`` to ``path`` (option ``flag``) atomically: a temporary file in the same
    folder, fsync, rename, so a reader sees the old file or the new one, never half of one.
    Returns None, or the one-line error naming ``flag`` when the write failed (nothing
    half-written is left). What was computed is not lost with it: the text is then kept in a
    new file in the system's temporary folder, which the error names."""
    try:
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    except OSError as err:
        return f"{flag} {path}: not written: {err.strerror or err}; {_keep(path, text)}"
    return None


def _keep(path: Path, text: str) -> str:
    """Save ``text``, which could not be written to ``path``, in a new temporary file; says
    where (or that it could not)."""
    try:
        fd, kept = tempfile.mkstemp(prefix=f"{path.stem}-", suffix=path.suffix)
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
    except OSError as err:
        return f"not kept either ({err.strerror or err})"
    return f"kept in {kept}"
