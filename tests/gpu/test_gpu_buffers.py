"""Buffers are created once per backend: none per batch, chunk or annealing step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gpu_helpers import gpu_agrees, skip_without_gpu, watch_buffer_creation
from tiny import WORDS, make_tiny

from sae.batch import ProgramBatch
from sae.layout import DEFAULT_CAPACITIES

skip_without_gpu()


@pytest.fixture
def created(monkeypatch):
    """Labels of every buffer created on the device from now on (wgpu's own included)."""
    labels: list[str] = []
    watch_buffer_creation(monkeypatch, lambda buffer, args, kwargs:
                          labels.append(str(kwargs.get("label", args[0] if args else ""))))
    return labels


def test_no_buffer_creation_after_construction(created):
    from sae.gpu import GpuBackend

    alg = make_tiny()
    gpu = GpuBackend(alg, DEFAULT_CAPACITIES, chunk=4)
    assert len(created) > 0  # the backend's own buffers
    created.clear()
    rng = np.random.default_rng(0)
    for n in (1, 4, 11):  # 11 documents: three chunks
        ids = [rng.integers(0, len(WORDS), size=int(rng.integers(0, 40))).tolist() for _ in range(n)]
        batch = ProgramBatch(n, DEFAULT_CAPACITIES)
        batch.widen(ids, alg.symbol_rows)
        gpu.bids(batch)
        gpu.anneal(batch)
        gpu.execute(batch)
        # the session: token ids in, embeddings out, two batches in flight
        lengths = np.array([len(d) for d in ids], dtype=np.uint32)
        first, second = gpu.submit_batch(ids, lengths), gpu.submit_batch(ids[::-1], lengths[::-1])
        first.result(), second.result()
    assert created == [], f"buffers created while running: {created}"


def test_split_batches_match_one_chunk():
    alg = make_tiny()
    rng = np.random.default_rng(3)
    ids = [rng.integers(0, len(WORDS), size=int(rng.integers(0, 30))).tolist() for _ in range(13)]
    gpu_agrees(alg, ids, chunk=2)


def test_buffer_bytes_reports_every_buffer(created):
    from sae.gpu import GpuBackend

    gpu = GpuBackend(make_tiny(), DEFAULT_CAPACITIES, chunk=4)
    assert gpu.buffer_bytes > 4 * DEFAULT_CAPACITIES.stream * 36  # at least the streams of a chunk
    assert len(created) >= len(gpu.buffers) + 1


def test_the_float_table_holds_every_transformed_row_and_a_table_too_large_is_refused(monkeypatch):
    """The VM gathers transformed items from the float table (no transform pass), so the
    table holds (1 + transforms) copies of the vectors; one over the adapter's binding
    limit is refused, naming the sizes, before anything is built on the device."""
    from sae.errors import BackendUnavailableError
    from sae.gpu import GpuBackend
    from sae.gpu.tables import dim4, float_table, float_table_bytes
    from sae.vector_table import VectorTable

    rng = np.random.default_rng(0)
    alg = make_tiny()
    alg = replace(alg, transforms=rng.standard_normal((2, alg.dim, alg.dim + 1)).astype(np.float32))
    floats, (off_weights, off_vectors) = float_table(alg)
    assert off_weights == 0 and off_vectors == -(-alg.vectors.shape[0] // 4)  # weights, four a vec4, first
    rows, n4 = alg.vectors.shape[0], dim4(alg.dim)
    assert len(floats) - off_vectors == (1 + alg.n_transforms) * rows * n4
    assert floats.nbytes == float_table_bytes(alg)
    table = VectorTable(alg.vectors, alg.transforms).complete()
    got = floats[off_vectors:].reshape(-1, 4 * n4)[:, : alg.dim]
    assert got.tobytes() == table.tobytes()

    monkeypatch.setattr(GpuBackend, "_binding_limit", lambda self: len(floats) * 16 - 1)
    with pytest.raises(BackendUnavailableError, match=r"transformed copies need \d+ bytes in one storage buffer "
                                                      r"binding, more than the adapter's limit"):
        GpuBackend(alg, DEFAULT_CAPACITIES)


@pytest.mark.parametrize(("stream", "rules", "journal"), [(3, 11, 5), (3, 16, 5), (3, 11, 256)])
def test_a_chunk_of_one_short_document_downloads_within_the_staging_buffer(stream, rules, journal):
    """Found by fuzzing: with one document per chunk and a 3-item stream, the regions of a
    download, each placed at a multiple of 8 bytes, overran the staging buffer by 8 bytes
    (a wgpu validation error in anneal)."""
    from equivalence import widened
    from tiny import make_tiny

    from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
    from sae.cpu import CpuBackend
    from sae.gpu import GpuBackend
    from sae.layout import Capacities

    caps = Capacities(stream=stream, rules=rules, stack=1, journal=journal)
    alg = make_tiny(rules=(Rule("r0", 1, (PatternElement(),), updates=(ItemUpdate(opcode=0),), mark=0),),
                    params=LoopParams(max_steps=1, tolerance=0, inhibit_steps=0), dim=1)
    cpu, gpu = widened(alg, [[0]], caps), widened(alg, [[0]], caps)
    CpuBackend(alg, caps).anneal(cpu)
    GpuBackend(alg, caps, chunk=1).anneal(gpu)
    assert np.array_equal(gpu.items, cpu.items) and np.array_equal(gpu.journal, cpu.journal)
