"""The numpy backend: the CPU path users run, checked against the plain reference (:mod:`sae.reference`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sae.algorithm import Algorithm
from sae.backend import DoneBatch, HostBatches, run_host_batch
from sae.batch import ProgramBatch
from sae.cpu.anneal import Annealer
from sae.cpu.match import Matcher
from sae.cpu.vm import run_vm
from sae.layout import Capacities, F, item_words
from sae.profile import Profiler
from sae.vector_table import VectorTable


class CpuBackend:
    """Implements :class:`sae.backend.Backend` with numpy."""

    name = "cpu"
    description = "numpy"
    concurrent_batches = True  # nothing but read-only tables is kept between calls
    #: A batch's cost here is mostly its numpy calls, so a larger batch spreads them over
    #: more documents: 2,048 embeds STS-B 10-23 % faster than 1,024, and larger ones no
    #: faster (docs/PERFORMANCE.md, "Larger CPU batches"); 26 MB of host batch per thread.
    default_batch = 2048

    def __init__(self, alg: Algorithm, caps: Capacities) -> None:
        self.alg, self.caps = alg, caps
        self.matcher = Matcher(alg, caps)
        self.annealer = Annealer(alg, self.matcher)
        self.table = VectorTable.shared(alg.vectors, alg.transforms)
        self._batches = HostBatches(caps)
        self._closed = False

    def prepare(self) -> None:
        """Compute every transformed vector row now (about 1.2 s for the default on 2 cores),
        which batches otherwise compute as they first need them."""
        self.table.complete()

    def close(self) -> None:
        """Drop the host batches (26 MB for each thread that embedded); idempotent. The
        matcher's tables, built from the Algorithm, go when the backend is dropped; the
        vector table is shared with other backends on the same vectors and stays."""
        self._closed = True
        self._batches.release()

    def _check_open(self, caller: str) -> None:
        if self._closed:
            raise ValueError(f"CpuBackend.{caller}: the backend is closed")

    @property
    def profiler(self) -> Profiler | None:
        """Set by the engine (``engine.profiler``): besides its stages, each rule's matching
        (``match NAME``) and footprints (``footprint NAME``) are then CPU scopes, and so is
        computing the transformed vector rows a batch is the first to need (``vector rows``)."""
        return self.matcher.profiler

    @profiler.setter
    def profiler(self, profiler: Profiler | None) -> None:
        self.matcher.profiler = profiler

    def submit_batch(self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray) -> DoneBatch:
        """Widen, anneal and execute now, on this thread's reused host batch."""
        self._check_open("submit_batch")
        return run_host_batch(self, self._batches, self.alg.symbol_rows, token_ids, lengths)

    def bids(self, batch: ProgramBatch) -> np.ndarray:
        self._check_open("bids")
        n = batch.n
        out = np.zeros((n, self.caps.stream, self.matcher.n_rules), dtype=np.uint32)
        length = batch.max_length()
        if n and length:
            words = item_words(batch.items)[:n, :length]
            keys = self.matcher.bids(self.matcher.view(words, batch.lengths[:n]))
            out[:, :length] = keys.transpose(1, 2, 0)
        return out

    def anneal(self, batch: ProgramBatch, max_steps: int | None = None) -> None:
        self._check_open("anneal")
        self.annealer.run(batch, max_steps)

    def execute(self, batch: ProgramBatch) -> np.ndarray:
        self._check_open("execute")
        n, length = batch.n, batch.max_length()
        words = item_words(batch.items)[:n, :length]
        if self.profiler is not None:
            # The transformed rows a batch needs first are computed in the VM's gather; timed
            # apart, the first batches' execute no longer reads as the VM's own cost.
            with self.profiler.scope("vector rows"):
                self.table.index(words[..., F.ARG0], words[..., F.MOD])
        # An Algorithm whose values overflow float32 is reported once, by the Engine
        # (Engine._finite), not by a numpy warning per array it reaches.
        with np.errstate(over="ignore", invalid="ignore"):
            return run_vm(words, batch.lengths[:n], self.table, self.alg.weights, self.caps.stack)
