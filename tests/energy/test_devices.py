"""The device behind each rank: identities, bus-id lookups, attribution by bus id."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest

from phantom_parallel.energy.cli import main
from phantom_parallel.energy.devices import (
    device_identity,
    normalize_bus_id,
    parse_amd_smi_list,
    parse_nvidia_smi_bus,
    parse_rocm_showbus,
    physical_index,
    rank_devices_manifest,
    sampler_bus_ids,
)
from phantom_parallel.energy.measure import LogInput
from phantom_parallel.energy.ranks import used_devices

from .conftest import FIXTURES

BUSES = {str(i): f"0000:{0xC1 + 5 * i:02x}:00.0" for i in range(8)}  # GCD i -> bus id


def test_normalize_bus_id() -> None:
    assert normalize_bus_id("00000000:C1:00.0") == "0000:c1:00.0"  # NVML
    assert normalize_bus_id(b"00000000:C1:00.0\x00") == "0000:c1:00.0"
    assert normalize_bus_id("c1:00.0") == "0000:c1:00.0"
    assert normalize_bus_id("N/A") is None and normalize_bus_id(None) is None


def test_tool_bus_outputs() -> None:
    rocm = json.dumps({"card0": {"PCI Bus": "0000:C1:00.0"}, "card1": {"PCI Bus": "0000:C6:00.0"}})
    assert parse_rocm_showbus(rocm + "\n") == {"0": "0000:c1:00.0", "1": "0000:c6:00.0"}
    amd = json.dumps([{"gpu": 0, "bdf": "0000:c1:00.0", "uuid": "x"}, {"gpu": 1, "bdf": "N/A"}])
    assert parse_amd_smi_list(amd) == {"0": "0000:c1:00.0"}
    nv = "0, 00000000:C1:00.0\n1, 00000000:C2:00.0\n"
    assert parse_nvidia_smi_bus(nv) == {"0": "0000:c1:00.0", "1": "0000:c2:00.0"}


def test_physical_index_under_visible_devices() -> None:
    assert physical_index(0, {}) == 0
    assert physical_index(1, {"HIP_VISIBLE_DEVICES": "4,5"}) == 5
    assert physical_index(0, {"ROCR_VISIBLE_DEVICES": "6", "CUDA_VISIBLE_DEVICES": ""}) == 6
    assert physical_index(0, {"CUDA_VISIBLE_DEVICES": "GPU-abc"}) is None


def fake_torch(props: object) -> types.SimpleNamespace:
    cuda = types.SimpleNamespace(current_device=lambda: 0, get_device_properties=lambda i: props)
    return types.SimpleNamespace(cuda=cuda)


def test_identity_from_torch_properties() -> None:
    props = types.SimpleNamespace(
        name="AMD Instinct MI250X", uuid="u0", pci_bus_id=0xD1, pci_device_id=0, pci_domain_id=0
    )
    env = {"LOCAL_RANK": "3", "ROCR_VISIBLE_DEVICES": "4"}
    ident = device_identity("cuda:0", env=env, torch_module=fake_torch(props))
    assert ident["pci_bus_id"] == "0000:d1:00.0" and ident["bus_id_source"] == "torch"
    assert ident["local_rank"] == 3 and ident["physical_index"] == 4
    assert ident["visible_devices"]["ROCR_VISIBLE_DEVICES"] == "4"
    assert ident["visible_devices"]["CUDA_VISIBLE_DEVICES"] is None


def test_identity_falls_back_to_nvml_then_amd_smi() -> None:
    props = types.SimpleNamespace(name="H200", uuid="1234-abcd")
    nvml = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByUUID=lambda u: u,
        nvmlDeviceGetPciInfo=lambda h: types.SimpleNamespace(busId=b"00000000:1B:00.0"),
    )
    ident = device_identity("cuda:0", env={}, torch_module=fake_torch(props), nvml=nvml)
    assert ident["pci_bus_id"] == "0000:1b:00.0" and ident["bus_id_source"] == "nvml"
    props = types.SimpleNamespace(name="MI250X", uuid=None)
    ident = device_identity(
        "cuda:1",
        env={"HIP_VISIBLE_DEVICES": "2,3"},
        torch_module=fake_torch(props),
        amd_smi_list=lambda: BUSES,
    )
    assert ident["physical_index"] == 3 and ident["pci_bus_id"] == BUSES["3"]
    assert ident["bus_id_source"] == "amd-smi"


def test_cpu_identity_needs_no_torch() -> None:
    ident = device_identity("cpu", env={})
    assert ident["type"] == "cpu" and ident["pci_bus_id"] is None


def test_manifest_helper() -> None:
    got = rank_devices_manifest([{"host": "n1", "pci_bus_id": "x"}, None])
    assert got == {"rank_devices": [{"rank": 0, "host": "n1", "pci_bus_id": "x"}, {"rank": 1}]}


def test_sampler_bus_ids_from_nvml_source() -> None:
    nvml = types.SimpleNamespace(
        nvmlDeviceGetPciInfo=lambda h: types.SimpleNamespace(busId=f"00000000:{h + 0x1B:02X}:00.0")
    )
    src = types.SimpleNamespace(name="nvml", handles=[0, 1], nvml=nvml)
    assert sampler_bus_ids(src) == {"0": "0000:1b:00.0", "1": "0000:1c:00.0"}
    assert sampler_bus_ids(types.SimpleNamespace(name="rapl")) == {}


def _entry(rank: int, bus: str | None, host: str = "n1", local: int | None = None) -> dict:
    return {"rank": rank, "host": host, "type": "cuda", "pci_bus_id": bus, "local_rank": local}


def test_bus_id_attribution_follows_gpu_bind_closest() -> None:
    # srun --gpu-bind=closest: local rank 0 runs on GCD 4, local rank 1 on GCD 6
    manifest = {"rank_devices": [_entry(0, BUSES["4"], local=0), _entry(1, BUSES["6"], local=1)]}
    used = used_devices(manifest, [LogInput("n1", Path("x"), bus_ids=BUSES)])
    assert used.per_host == {"n1": {"4", "6"}} and used.method == "bus-id" and not used.warnings


def test_two_ranks_on_one_device_count_it_once() -> None:
    manifest = {"rank_devices": [_entry(0, BUSES["0"], local=0), _entry(1, BUSES["0"], local=1)]}
    used = used_devices(manifest, [LogInput("n1", Path("x"), bus_ids=BUSES)])
    assert used.per_host == {"n1": {"0"}}
    assert any("ranks [0, 1] share device 0" in w for w in used.warnings)


def test_unknown_bus_id_and_missing_bus_ids_fall_back_with_a_warning() -> None:
    manifest = {"rank_devices": [_entry(0, "0000:99:00.0", local=0), _entry(1, None, local=1)]}
    used = used_devices(manifest, [LogInput("n1", Path("x"), bus_ids=BUSES)])
    assert used.per_host == {"n1": {"0", "1"}} and used.method == "rank-index"
    w = " ".join(used.warnings)
    assert "rank 0 -> device 0 (its device 0000:99:00.0 is not among" in w
    assert "rank 1 -> device 1 (no PCI bus id" in w


def test_no_rank_devices_uses_the_index_rule_with_a_warning() -> None:
    used = used_devices({"hosts": ["n1"], "world_size": 2}, [])
    assert used.per_host == {"n1": {"0", "1"}}
    assert used.warnings and "rank-index rule" in used.warnings[0]


def test_extract_counts_a_shared_device_once(tmp_path: Path) -> None:
    """Two ranks on GPU 0 (the issue's case): no 'used devices [1] have no readings'."""
    run = tmp_path / "run"
    (run / "power").mkdir(parents=True)
    shutil.copy(FIXTURES / "node1.nvml.log", run / "power" / "n1.nvml.log")
    (run / "power" / "n1.sampler.json").write_text(
        json.dumps(
            {
                "host": "n1",
                "log": "n1.nvml.log",
                "log_format": "nvml-csv",
                "source": "nvml",
                "interval_s": 1.0,
                "device_bus_ids": {"0": "0000:1b:00.0"},
            }
        )
    )
    t0 = 1741101302 * 10**9
    (run / "events.jsonl").write_text(
        "".join(
            json.dumps({"t_ns": t0 + k * 4 * 10**9, "event": e}) + "\n"
            for k, e in enumerate(["measure_start", "measure_end"])
        )
    )
    bus = "00000000:1B:00.0"
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "world_size": 2,
                "hosts": ["n1"],
                **rank_devices_manifest([_entry(0, bus, local=0), _entry(1, bus, local=1)]),
            }
        )
    )
    assert main(["extract", "--run-dir", str(run)]) == 0
    rep = json.loads((run / "energy.json").read_text())
    assert rep["total_j"] == pytest.approx(1400.0)
    assert not any("have no readings" in w for w in rep["warnings"])
    assert rep["device_attribution"]["ranks_per_device"] == {"n1": {"0": [0, 1]}}
    row = next(d for d in rep["devices"] if d["device"] == "0")
    assert row["pci_bus_id"] == "0000:1b:00.0"
