"""The teacher's forward pass on a GPU (``phantom-data generate --device cuda``).

Only the teacher's float64 forward pass moves to the device: weights, inputs, noise and the
calibration statistics are drawn/computed on the CPU exactly as for ``--device cpu``, and the
outputs come back to numpy for standardisation, noise and rounding. The device result differs
from numpy's only by the float64 summation order of the GEMMs and the device's ``tanh``
(a few ulp, relative ~1e-15); after rounding to ``quantum`` a stored target differs only when
the exact value lies within that distance of a rounding midpoint, and then by exactly one
quantum (``docs/method.md``, "Generating on a GPU").
"""

from __future__ import annotations

import re

import numpy as np
import torch

DEVICE_FLAG = "--device"


def check_device(device: str) -> str:
    """``device`` if it can generate here: ``cpu``, or ``cuda``/``cuda:N`` with that GPU visible.

    Raises:
        ValueError: one line naming the ``--device`` flag (unknown value, no GPU, no GPU N).
    """
    if device == "cpu":
        return device
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if m is None:
        raise ValueError(f"{DEVICE_FLAG}={device!r}: expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"{DEVICE_FLAG}={device}: torch sees no GPU "
                         "(torch.cuda.is_available() is False); use --device cpu")
    index, count = int(m.group(1) or 0), torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"{DEVICE_FLAG}={device}: torch sees {count} GPU(s)")
    return device


def _act(z: torch.Tensor, name: str) -> torch.Tensor:
    """The teacher's activation in torch, the same formulas as the numpy path."""
    if name == "tanh":
        return torch.tanh(z)
    if name == "relu":
        return torch.clamp_min(z, 0.0)
    if name == "sin":
        return torch.sin(z)
    return 0.5 * z * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3)))


class TorchForward:
    """Teacher weights (float64) resident on ``device``; ``__call__`` is
    :func:`phantom_parallel.data.teacher.teacher_forward` on that device.

    Args:
        params: ``(W, b)`` per linear, float64 numpy, ``W`` of shape ``out x in``.
        activation: teacher activation name.
        device: a torch device (``cuda``; ``cpu`` works too, for tests of this path).
        chunk: rows per forward pass (memory: chunk x width float64 per activation).
    """

    def __init__(self, params: list[tuple[np.ndarray, np.ndarray]], activation: str,
                 device: str | torch.device, chunk: int = 4096) -> None:
        self.device = torch.device(device)
        self.activation, self.chunk = activation, chunk
        self.params = [(torch.from_numpy(W).to(self.device), torch.from_numpy(b).to(self.device))
                       for W, b in params]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Raw teacher output (rows x d_out, float64 numpy) of ``x`` (rows x d_in)."""
        out = np.empty((x.shape[0], self.params[-1][0].shape[0]), dtype=np.float64)
        with torch.no_grad():
            for lo in range(0, x.shape[0], self.chunk):
                h = torch.from_numpy(np.asarray(x[lo:lo + self.chunk], dtype=np.float64))
                h = h.to(self.device)
                for W, b in self.params[:-1]:
                    h = _act(h @ W.T + b, self.activation)
                W, b = self.params[-1]
                out[lo:lo + self.chunk] = (h @ W.T + b).cpu().numpy()
        return out
