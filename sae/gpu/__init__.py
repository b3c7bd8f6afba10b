"""The GPU backend: WGSL compute passes (``shaders/``) run through wgpu-py.

``GpuBackend`` implements :class:`sae.backend.Backend`; :mod:`sae.gpu.device` lists
and picks adapters. See docs/GPU.md for the passes and buffers.
"""

from __future__ import annotations

from sae.gpu.backend import GpuBackend
from sae.gpu.device import AdapterInfo, choose_adapter, enumerate_adapters

__all__ = ["AdapterInfo", "GpuBackend", "choose_adapter", "enumerate_adapters"]
