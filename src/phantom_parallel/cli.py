"""What every ``phantom-*`` console script's parser shares: the description kept as written,
each option's default shown in ``--help``, and ``--version``."""

from __future__ import annotations

import argparse

from phantom_parallel import __version__


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
    """What is wrong with ``--device``/``--backend`` on this machine (None: nothing)."""
    import torch

    from phantom_parallel.distributed import resolve_backend

    if not device.startswith(("cpu", "cuda")):
        return f"--device={device!r}: use cpu or cuda (ROCm GPUs are cuda in torch)"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "--device=cuda but torch sees no GPU"
    try:
        resolve_backend(backend, device)
    except ValueError as err:
        return f"--backend: {err}"
    return None
