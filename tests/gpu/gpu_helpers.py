"""Shared by the GPU test modules: the adapter probe and CPU == GPU (== reference) checks."""

from __future__ import annotations

from equivalence import assert_backends_agree

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.errors import BackendUnavailableError
from sae.layout import DEFAULT_CAPACITIES, Capacities


def gpu_skip_reason() -> str | None:
    """None when a GPU adapter can run sae, else why not (the module-level skip reason)."""
    try:
        from sae.gpu.device import choose_adapter, get_device

        get_device(choose_adapter())
    except (ImportError, BackendUnavailableError) as exc:
        return f"no GPU adapter can run sae here: {exc}"
    return None


def gpu_agrees(
    alg: Algorithm,
    token_ids: list[list[int]],
    caps: Capacities = DEFAULT_CAPACITIES,
    chunk: int | None = None,
    gpu=None,
    reference: bool = False,
) -> tuple[ProgramBatch, ProgramBatch]:
    """WGSL == numpy on everything docs/ENGINE.md fixes (and == the reference when asked).

    Returns the numpy and the GPU batch after annealing.
    """
    from sae.cpu import CpuBackend
    from sae.gpu import GpuBackend

    gpu = gpu or GpuBackend(alg, caps, chunk=chunk)
    if reference:
        from sae.reference import ReferenceBackend

        assert_backends_agree(ReferenceBackend(alg, caps), gpu, alg, token_ids, caps)
    return assert_backends_agree(CpuBackend(alg, caps), gpu, alg, token_ids, caps)
