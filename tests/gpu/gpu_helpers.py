"""Shared by the GPU test modules: the adapter probe and CPU == GPU (== reference) checks."""

from __future__ import annotations

import os

import pytest
from equivalence import assert_backends_agree

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.errors import BackendUnavailableError
from sae.layout import DEFAULT_CAPACITIES, Capacities

#: Set (to 1) where the GPU tier must run: a missing adapter then fails it (``.ci/run``).
REQUIRE_GPU = "SAE_REQUIRE_GPU"


def gpu_skip_reason() -> str | None:
    """None when a GPU adapter can run sae, else why not (the module-level skip reason)."""
    try:
        from sae.gpu.device import choose_adapter, get_device

        get_device(choose_adapter())
    except (ImportError, BackendUnavailableError) as exc:
        return f"no GPU adapter can run sae here: {exc}"
    return None


def skip_without_gpu() -> None:
    """Skip the calling test module when no adapter can run sae, or, with
    ``SAE_REQUIRE_GPU=1`` (CI), fail it: a broken driver install must not turn the GPU
    tier into skips that leave CI green."""
    reason = gpu_skip_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_GPU, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_GPU} is set but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def gpu_agrees(
    alg: Algorithm,
    token_ids: list[list[int]],
    caps: Capacities = DEFAULT_CAPACITIES,
    chunk: int | None = None,
    gpu=None,
    reference: bool = False,
    max_steps: int | None = None,
) -> tuple[ProgramBatch, ProgramBatch]:
    """WGSL == numpy on everything docs/ENGINE.md fixes (and == the reference when asked),
    annealing with the step limit ``max_steps`` when given.

    Returns the numpy and the GPU batch after annealing.
    """
    from sae.cpu import CpuBackend
    from sae.gpu import GpuBackend

    gpu = gpu or GpuBackend(alg, caps, chunk=chunk)
    if reference:
        from sae.reference import ReferenceBackend

        assert_backends_agree(ReferenceBackend(alg, caps), gpu, alg, token_ids, caps, max_steps)
    return assert_backends_agree(CpuBackend(alg, caps), gpu, alg, token_ids, caps, max_steps)


def watch_buffer_creation(monkeypatch, on_create) -> None:
    """Call ``on_create(buffer, args, kwargs)`` for every buffer created on the default
    adapter's device from now on (wgpu-py names the method ``create_buffer`` or, in some
    versions, ``_create_buffer``); undone with ``monkeypatch``."""
    from sae.gpu.device import choose_adapter, get_device

    cls = type(get_device(choose_adapter()))
    name = "_create_buffer" if hasattr(cls, "_create_buffer") else "create_buffer"
    original = getattr(cls, name)

    def creating(self, *args, **kwargs):
        buffer = original(self, *args, **kwargs)
        on_create(buffer, args, kwargs)
        return buffer

    monkeypatch.setattr(cls, name, creating)
