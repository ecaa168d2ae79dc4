"""The device behind each rank, and the devices the sampler reads, by PCI bus id.

- :func:`device_identity` -- what a rank records about its device: PCI bus id (from
  ``torch.cuda.get_device_properties``; else NVML by UUID; else ``amd-smi list`` by physical
  index), UUID, name, torch index, local rank and the visible-device variables;
- :func:`rank_devices_manifest` -- what the trainer's ``manifest.json`` holds
  (``{"rank_devices": [...]}``, one entry per rank, in rank order);
- :func:`sampler_bus_ids` -- device label -> bus id of the devices a sampler source reads
  (NVML, ``rocm-smi --showbus --json``, ``amd-smi list --json``, ``nvidia-smi``);
- parsers of those tools' outputs (documented formats), and :func:`normalize_bus_id`.

Bus ids are normalised to ``dddd:bb:dd.f`` in lower case (NVML prints ``00000000:C1:00.0``).
Attribution by bus id is in :mod:`.ranks`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

#: Variables that remap device indices, recorded per rank.
VISIBLE_ENV = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
#: Seconds a bus-id lookup command may take.
LOOKUP_TIMEOUT_S = 10.0
BUS_ID = re.compile(r"^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


def normalize_bus_id(text: object) -> str | None:
    """``00000000:C1:00.0`` / ``0000:c1:00.0`` / ``c1:00.0`` -> ``0000:c1:00.0``; None if not one."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if not isinstance(text, str):
        return None
    m = BUS_ID.match(text.strip().rstrip("\x00"))
    if not m:
        return None
    dom, bus, dev, fn = m.groups()
    return f"{int(dom or '0', 16):04x}:{bus.lower()}:{dev.lower()}.{fn}"


def _pick(index: int, value: str) -> int | None:
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not all(x.isdigit() for x in items) or index >= len(items):
        return None
    return int(items[index])


def physical_index(index: int, env: Mapping[str, str]) -> int | None:
    """Physical device index behind torch index ``index``: ``HIP_VISIBLE_DEVICES`` (or
    ``CUDA_VISIBLE_DEVICES``) selects among the devices ``ROCR_VISIBLE_DEVICES`` leaves
    visible; None when a variable lists UUIDs or does not cover the index."""
    idx: int | None = index
    hip = env.get("HIP_VISIBLE_DEVICES") or env.get("CUDA_VISIBLE_DEVICES")
    if hip and hip.strip():
        idx = _pick(index, hip)
    rocr = env.get("ROCR_VISIBLE_DEVICES")
    if idx is not None and rocr and rocr.strip():
        idx = _pick(idx, rocr)
    return idx


def _props_bus_id(props: Any) -> str | None:
    bus, dev = getattr(props, "pci_bus_id", None), getattr(props, "pci_device_id", None)
    if isinstance(bus, int) and isinstance(dev, int):
        dom = getattr(props, "pci_domain_id", 0) or 0
        return f"{int(dom):04x}:{bus:02x}:{dev:02x}.0"
    return None


def device_identity(
    device: Any,
    *,
    local_rank: int | None = None,
    env: Mapping[str, str] | None = None,
    torch_module: Any | None = None,
    nvml: Any | None = None,
    amd_smi_list: Callable[[], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Identity of the device a rank computes on (call it on every rank).

    device: a ``torch.device`` or its string (``"cuda:0"``, ``"cpu"``).
    local_rank: default ``LOCAL_RANK`` / ``SLURM_LOCALID`` from ``env``.
    Returns ``host``, ``local_rank``, ``type``, ``index`` (torch's), ``physical_index``
    (under the visible-device variables), ``name``, ``uuid``, ``pci_bus_id`` (None when no
    lookup worked), ``bus_id_source`` and ``visible_devices`` (each variable or None).
    ``torch_module``, ``nvml`` and ``amd_smi_list`` replace the real ones in tests.
    """
    env = os.environ if env is None else env
    if local_rank is None:
        lr = env.get("LOCAL_RANK") or env.get("SLURM_LOCALID")
        local_rank = int(lr) if lr and lr.isdigit() else None
    out: dict[str, Any] = {
        "host": socket.gethostname().split(".")[0],
        "local_rank": local_rank,
        "type": str(device).split(":")[0] if isinstance(device, str) else str(device.type),
        "index": None,
        "physical_index": None,
        "name": None,
        "uuid": None,
        "pci_bus_id": None,
        "bus_id_source": None,
        "visible_devices": {v: env.get(v) for v in VISIBLE_ENV},
    }
    if out["type"] != "cuda":
        return out
    if torch_module is None:
        import torch as torch_module  # type: ignore[no-redef]
    if isinstance(device, str):
        index = int(device.split(":")[1]) if ":" in device else None
    else:
        index = device.index
    if index is None:
        index = torch_module.cuda.current_device()
    out["index"] = index
    out["physical_index"] = physical_index(index, env)
    props = torch_module.cuda.get_device_properties(index)
    out["name"] = getattr(props, "name", None)
    uuid = getattr(props, "uuid", None)
    out["uuid"] = str(uuid) if uuid else None
    bus = _props_bus_id(props)
    if bus:
        out["pci_bus_id"], out["bus_id_source"] = bus, "torch"
    elif out["uuid"] and (bus := _nvml_bus_by_uuid(out["uuid"], nvml)):
        out["pci_bus_id"], out["bus_id_source"] = bus, "nvml"
    elif out["physical_index"] is not None:
        table = (amd_smi_list or amd_smi_bus_ids)()
        if str(out["physical_index"]) in table:
            out["pci_bus_id"] = table[str(out["physical_index"])]
            out["bus_id_source"] = "amd-smi"
    return out


def rank_devices_manifest(identities: list[dict[str, Any] | None]) -> dict[str, Any]:
    """What ``manifest.json`` holds: ``{"rank_devices": [{"rank": r, **identity}, ...]}``
    from the identities gathered from every rank, in rank order (None: rank did not answer)."""
    return {"rank_devices": [{"rank": r, **(ident or {})} for r, ident in enumerate(identities)]}


def _nvml_bus_by_uuid(uuid: str, nvml: Any | None) -> str | None:
    try:
        if nvml is None:
            import pynvml as nvml  # type: ignore[import-not-found,no-redef]
        nvml.nvmlInit()
        u = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        h = nvml.nvmlDeviceGetHandleByUUID(u)
        return normalize_bus_id(nvml.nvmlDeviceGetPciInfo(h).busId)
    except Exception:  # no NVML, not an NVIDIA device, unknown UUID
        return None


def parse_rocm_showbus(text: str) -> dict[str, str]:
    """``rocm-smi --showbus --json`` -> ``{"0": "0000:c1:00.0"}`` (key ``PCI Bus``)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("{"):
            continue
        try:
            doc = json.loads(s)
        except ValueError:
            continue
        for card, fields in doc.items() if isinstance(doc, dict) else ():
            m = re.fullmatch(r"card(\d+)", str(card))
            bus = normalize_bus_id(fields.get("PCI Bus")) if isinstance(fields, dict) else None
            if m and bus:
                out[m.group(1)] = bus
    return out


def parse_amd_smi_list(text: str) -> dict[str, str]:
    """``amd-smi list --json`` (``[{"gpu": 0, "bdf": "0000:c1:00.0", "uuid": ...}]``)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    if isinstance(doc, dict):
        doc = doc.get("gpu_data", [doc])
    out = {}
    for e in doc if isinstance(doc, list) else []:
        bus = normalize_bus_id(e.get("bdf")) if isinstance(e, dict) else None
        if bus and "gpu" in e:
            out[str(e["gpu"])] = bus
    return out


def parse_nvidia_smi_bus(text: str) -> dict[str, str]:
    """``nvidia-smi --query-gpu=index,pci.bus_id --format=csv,noheader`` rows."""
    out = {}
    for row in csv.reader(text.splitlines()):
        if len(row) == 2 and row[0].strip().isdigit() and (bus := normalize_bus_id(row[1])):
            out[row[0].strip()] = bus
    return out


LOOKUPS: dict[str, tuple[list[str], Callable[[str], dict[str, str]]]] = {
    "rocm-smi": (["rocm-smi", "--showbus", "--json"], parse_rocm_showbus),
    "amd-smi": (["amd-smi", "list", "--json"], parse_amd_smi_list),
    "nvidia-smi": (
        ["nvidia-smi", "--query-gpu=index,pci.bus_id", "--format=csv,noheader"],
        parse_nvidia_smi_bus,
    ),
}


def _run(tool: str) -> dict[str, str]:
    argv, parse = LOOKUPS[tool]
    exe = shutil.which(argv[0])
    if exe is None:
        return {}
    try:
        proc = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, timeout=LOOKUP_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse(proc.stdout)


def amd_smi_bus_ids() -> dict[str, str]:
    """Physical index -> bus id from ``amd-smi list --json`` (``{}`` without amd-smi)."""
    return _run("amd-smi")


def sampler_bus_ids(source: Any) -> dict[str, str]:
    """Device label -> bus id of the devices an open sampler ``source`` reads (``{}`` for
    RAPL, pm_counters, or when the lookup fails)."""
    name = getattr(source, "name", "")
    if name == "nvml":
        out = {}
        for i, h in enumerate(getattr(source, "handles", [])):
            try:
                bus = normalize_bus_id(source.nvml.nvmlDeviceGetPciInfo(h).busId)
            except Exception:
                bus = None
            if bus:
                out[str(i)] = bus
        return out
    return _run(name) if name in LOOKUPS else {}
