"""NVML source against a fake pynvml module; its log parses to the known energy."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from phantom_parallel.energy.formats import parse
from phantom_parallel.energy.integrate import device_energy
from phantom_parallel.energy.sources import NvmlSource, SourceError


class NotSupported(Exception):
    pass


def fake_nvml(n: int = 2, energy_supported: bool = True) -> types.SimpleNamespace:
    state = {"mj": [1000 * i for i in range(n)]}

    def energy(h: int) -> int:
        if not energy_supported:
            raise NotSupported("NVMLError_NotSupported")
        state["mj"][h] += 25_000  # 25 J per read
        return state["mj"][h]

    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: n,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetPowerUsage=lambda h: 250_000,  # mW
    )


def test_nvml_poll_and_parse(tmp_path: Path) -> None:
    src = NvmlSource(fake_nvml())
    log = tmp_path / "n.nvml.log"
    log.write_text(src.header + "".join(src.poll() for _ in range(4)))
    src.close()
    r = parse(log, "nvml-csv")
    assert not r.issues and len(r.samples) == 8
    s = [x for x in r.samples if x.device == "0"]
    de = device_energy("0", r.samples, s[0].t_ns, s[-1].t_ns)
    assert de.method == "counter" and de.counter_j == pytest.approx(75.0)
    assert s[0].power_w == pytest.approx(250.0)


def test_nvml_not_supported_energy_is_missing(tmp_path: Path) -> None:
    src = NvmlSource(fake_nvml(1, energy_supported=False))
    log = tmp_path / "n.nvml.log"
    log.write_text(src.header + src.poll() + src.poll())
    r = parse(log, "nvml-csv")
    assert all(x.energy_j is None and x.power_w == 250.0 for x in r.samples)


def test_nvml_without_gpu_fails_clearly() -> None:
    with pytest.raises(SourceError, match="no GPU"):
        NvmlSource(fake_nvml(0))
