"""Shared by the GPU test modules: the adapter probe and the CPU == GPU check."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.cpu import CpuBackend
from sae.errors import BackendUnavailableError
from sae.layout import DEFAULT_CAPACITIES, EMBEDDING_TOLERANCE, Capacities


def gpu_skip_reason() -> str | None:
    """None when a GPU adapter can run sae, else why not (the module-level skip reason)."""
    try:
        from sae.gpu.device import choose_adapter, get_device

        get_device(choose_adapter())
    except (ImportError, BackendUnavailableError) as exc:
        return f"no GPU adapter can run sae here: {exc}"
    return None


def assert_backends_agree(
    alg: Algorithm,
    token_ids: list[list[int]],
    caps: Capacities = DEFAULT_CAPACITIES,
    chunk: int | None = None,
    gpu=None,
) -> tuple[ProgramBatch, ProgramBatch]:
    """Bids of step 0, final items bytes, lengths, journals and embeddings: CPU == GPU."""
    from sae.gpu import GpuBackend

    cpu = CpuBackend(alg, caps)
    gpu = gpu or GpuBackend(alg, caps, chunk=chunk)
    size = max(len(token_ids), 1)
    bc, bg = ProgramBatch(size, caps), ProgramBatch(size, caps)
    bc.widen(token_ids, alg.symbol_rows)
    bg.widen(token_ids, alg.symbol_rows)
    kc, kg = cpu.bids(bc), gpu.bids(bg)
    assert kc.shape == kg.shape
    bad = np.flatnonzero((kc != kg).reshape(len(token_ids), kc[0].size if len(kc) else 0).any(axis=1))
    assert len(bad) == 0, f"step-0 bid keys differ in documents {list(bad)}"
    cpu.anneal(bc)
    gpu.anneal(bg)
    n = len(token_ids)
    assert np.array_equal(bc.lengths[:n], bg.lengths[:n]), "final lengths differ"
    size_words = bc.items.dtype.itemsize // 4 * caps.stream
    items_c = bc.items[:n].view(np.uint32).reshape(n, size_words)
    items_g = bg.items[:n].view(np.uint32).reshape(n, size_words)
    bad = np.flatnonzero((items_c != items_g).any(axis=1))
    assert len(bad) == 0, f"final ProgramStreams differ in documents {list(bad)}"
    assert np.array_equal(bc.journal_len[:n], bg.journal_len[:n]), "journal lengths differ"
    assert bc.journal[:n].tobytes() == bg.journal[:n].tobytes(), "journals differ"
    assert bc.stats == bg.stats, f"anneal stats differ: {bc.stats} vs {bg.stats}"
    ec, eg = cpu.execute(bc), gpu.execute(bg)
    assert ec.shape == eg.shape and eg.dtype == np.float32
    if ec.size:
        diff = np.abs(ec - eg).max()
        assert diff <= EMBEDDING_TOLERANCE, f"embeddings differ by {diff}"
    return bc, bg
