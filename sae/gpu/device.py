"""Adapter discovery and choice, the limits sae needs, and one device per adapter.

The adapter is picked by, in order: the ``adapter`` argument, the environment
variable ``SAE_ADAPTER`` (a case-insensitive substring of the adapter's name), or a
ranking: native graphics backends (Vulkan, Metal, D3D12) before OpenGL, then by
device type following ``SAE_POWER_PREFERENCE`` (``high-performance``, the default:
discrete before integrated; ``low-power``: integrated first), software adapters
last. Adapters whose limits are too small for sae are skipped, and when none is
left :class:`~sae.errors.BackendUnavailableError` says why in one line.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from sae.errors import BackendUnavailableError, InputError, SaeError
from sae.gpu.shaders import workgroup_bytes
from sae.layout import DEFAULT_CAPACITIES

log = logging.getLogger(__name__)

#: Threads per workgroup in every pass on a GPU (``WG`` in the shaders; a power of two).
WORKGROUP = 64
#: ... and on a CPU adapter (lavapipe, WARP): one SIMD group of 256-bit lanes, so that a
#: workgroup's barriers and entry cost are paid once per group of documents.
CPU_WORKGROUP = 8
#: Storage buffers one pass binds (shaders/common.wgsl); WebGPU guarantees 8.
STORAGE_BUFFERS = 8
#: Workgroup memory the largest pass uses with the default capacities, in bytes (other
#: capacities are checked when a backend is built).
WORKGROUP_STORAGE = workgroup_bytes(DEFAULT_CAPACITIES, WORKGROUP)

#: Limits sae checks, with the smallest value it can work with.
REQUIRED_LIMITS: dict[str, int] = {
    "max-storage-buffers-per-shader-stage": STORAGE_BUFFERS,
    "max-compute-invocations-per-workgroup": WORKGROUP,
    "max-compute-workgroup-size-x": WORKGROUP,
    "max-compute-workgroup-storage-size": WORKGROUP_STORAGE,
    "max-storage-buffer-binding-size": 1 << 20,
    "max-buffer-size": 1 << 20,
    "max-compute-workgroups-per-dimension": 1024,
    "max-uniform-buffer-binding-size": 256,
}
#: Limits `sae info` shows (the ones above).
SHOWN_LIMITS = tuple(REQUIRED_LIMITS)



class GpuError(SaeError):
    """The device failed while running (lost, out of memory, a driver error): exit code 1."""


_BACKEND_RANK = {"Vulkan": 0, "Metal": 0, "D3D12": 0, "OpenGL": 1, "GL": 1}
_TYPE_RANK_HIGH = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3}
_TYPE_RANK_LOW = {"IntegratedGPU": 0, "DiscreteGPU": 1, "VirtualGPU": 2, "CPU": 3}


@dataclass
class AdapterInfo:
    """What sae knows about one adapter, without creating a device."""

    index: int
    name: str
    backend: str  # Vulkan, Metal, D3D12, OpenGL
    device_type: str  # DiscreteGPU, IntegratedGPU, VirtualGPU, CPU, Unknown
    description: str
    features: set[str]
    limits: dict[str, int]
    adapter: Any = field(repr=False, default=None)

    @property
    def is_software(self) -> bool:
        """A CPU rasterizer (lavapipe, WARP): slower than numpy, so ``auto`` skips it."""
        return self.device_type == "CPU"

    @property
    def workgroup(self) -> int:
        """Threads per workgroup of sae's passes on this adapter."""
        return CPU_WORKGROUP if self.is_software else WORKGROUP

    @property
    def timestamp_query(self) -> bool:
        return "timestamp-query" in self.features

    def problems(self) -> list[str]:
        """Why sae cannot run on this adapter (empty when it can)."""
        out = []
        for name, need in REQUIRED_LIMITS.items():
            have = int(self.limits.get(name, 0))
            if have < need:
                out.append(f"{name} is {have}, sae needs {need}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "backend": self.backend,
            "device_type": self.device_type,
            "is_software": self.is_software,
            "description": self.description,
            "timestamp_query": self.timestamp_query,
            "limits": {k: int(self.limits.get(k, 0)) for k in SHOWN_LIMITS},
            "usable": not self.problems(),
            "problems": self.problems(),
        }


_adapters: list[AdapterInfo] | None = None
_devices: dict[int, Any] = {}


def enumerate_adapters() -> list[AdapterInfo]:
    """Every adapter wgpu can see (cached for the process); [] when wgpu finds none."""
    global _adapters
    if _adapters is None:
        try:
            import wgpu

            raw = wgpu.gpu.enumerate_adapters_sync()
        except ImportError as exc:
            raise BackendUnavailableError(f"wgpu cannot be imported: {exc}") from None
        except Exception as exc:  # a broken driver must not take the caller down
            log.warning("enumerating GPU adapters failed: %r", exc, exc_info=True)
            raw = []
        _adapters = []
        for i, a in enumerate(raw):
            info = a.info
            _adapters.append(
                AdapterInfo(
                    index=i,
                    name=str(info.get("device", "") or info.get("description", "") or f"adapter {i}"),
                    backend=str(info.get("backend_type", "Unknown")),
                    device_type=str(info.get("adapter_type", "Unknown")),
                    description=str(info.get("description", "")),
                    features={str(f) for f in a.features},
                    limits={str(k): int(v) for k, v in a.limits.items() if isinstance(v, int)},
                    adapter=a,
                )
            )
    return _adapters


def _rank(a: AdapterInfo, power: str) -> tuple[int, int, int]:
    types = _TYPE_RANK_LOW if power == "low-power" else _TYPE_RANK_HIGH
    return (_BACKEND_RANK.get(a.backend, 2), types.get(a.device_type, 4), a.index)


def choose_adapter(name: str | None = None, adapters: list[AdapterInfo] | None = None) -> AdapterInfo:
    """The adapter sae would use (see the module docstring for the order).

    Raises :class:`BackendUnavailableError` when none exists, none matches ``name``,
    or none has the limits sae needs.
    """
    adapters = enumerate_adapters() if adapters is None else adapters
    if name is None:
        name = os.environ.get("SAE_ADAPTER") or None
    if not adapters:
        raise BackendUnavailableError("no GPU adapter found (wgpu sees no Vulkan, Metal, D3D12 or GL device)")
    power = os.environ.get("SAE_POWER_PREFERENCE") or "high-performance"
    if power not in ("high-performance", "low-power"):
        raise InputError(f"SAE_POWER_PREFERENCE must be 'high-performance' or 'low-power', got {power!r}")
    candidates = sorted(adapters, key=lambda a: _rank(a, power))
    if name:
        wanted = name.lower()
        candidates = [a for a in candidates if wanted in f"{a.name} {a.description} {a.backend}".lower()]
        if not candidates:
            known = "; ".join(f"{a.name} ({a.backend})" for a in adapters)
            raise BackendUnavailableError(f"no GPU adapter matches {name!r} (found: {known})")
    reasons = []
    for a in candidates:
        problems = a.problems()
        if not problems:
            return a
        reasons.append(f"{a.name} ({a.backend}): {problems[0]}")
    raise BackendUnavailableError("no usable GPU adapter: " + "; ".join(reasons))


def is_device_lost(exc: BaseException) -> bool:
    """Whether a wgpu error says the device is gone (lost, destroyed, reset by the driver)."""
    text = str(exc).lower()
    return "device is lost" in text or "device lost" in text or "was lost" in text or "destroyed" in text


def error_line(exc: BaseException) -> str:
    """The line of a wgpu error that says what happened: wgpu heads most of them with
    "Validation Error", "Caused by:" and the API call ("In wgpuQueueSubmit")."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    said = [line for line in lines
            if line not in ("Validation Error", "Caused by:") and not line.startswith("In wgpu")]
    return (said or lines or [type(exc).__name__])[0]


def forget_device(device: Any) -> None:
    """Drop a lost device from the process-wide caches (devices, pipelines), so that the
    next :func:`get_device` creates a fresh one."""
    for index, cached in list(_devices.items()):
        if cached is device:
            del _devices[index]
    for hook in _forget_hooks:
        hook(device)


#: Callbacks that drop what other modules cache per device (sae.gpu.backend's pipelines).
_forget_hooks: list = []


#: The process this one was forked from after that process opened a GPU device (None: not
#: so). Its devices are not usable here (a readback waited forever), and dropping them would
#: run their destructors against the parent's driver state, so they are kept, unused.
_forked_from: int | None = None


def _after_fork_in_child() -> None:
    global _forked_from
    if _devices and _forked_from is None:
        _forked_from = os.getppid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_device(info: AdapterInfo) -> Any:
    """The device of ``info`` (one per adapter per process, with the adapter's limits)."""
    if _forked_from is not None:
        raise BackendUnavailableError(
            f"this process was forked from process {_forked_from} after it had opened a GPU device, and wgpu "
            "cannot run here then; start child processes with the 'spawn' method to use the GPU in them")
    device = _devices.get(info.index)
    if device is None:
        features = ["timestamp-query"] if info.timestamp_query else []
        limits = {k: info.limits[k] for k in REQUIRED_LIMITS if k in info.limits}
        try:
            device = info.adapter.request_device_sync(
                label=f"sae on {info.name}", required_features=features, required_limits=limits
            )
        except Exception as exc:
            raise BackendUnavailableError(f"cannot open a device on {info.name} ({info.backend}): {exc}") from None
        _devices[info.index] = device
    return device


__all__ = [
    "REQUIRED_LIMITS",
    "WORKGROUP",
    "AdapterInfo",
    "GpuError",
    "choose_adapter",
    "enumerate_adapters",
    "error_line",
    "forget_device",
    "get_device",
    "is_device_lost",
]
