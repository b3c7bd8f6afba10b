"""The one small interface every backend implements; the engine never asks which.

Embedding goes through :meth:`Backend.submit_batch`: token ids in, embeddings and the
annealing counts out, and nothing else crosses between host and device (the GPU path
widens, anneals, executes and normalizes in one submission and reads back only the
embeddings and the counts). A backend may return before the work is done, so that the caller
tokenizes the next batch meanwhile; :meth:`PendingBatch.result` waits for it.

Inspection (``Engine.explain``, ``sae trace``, ``sae compare``, the viewer, the
distillation) goes through a host :class:`~sae.batch.ProgramBatch`: ``bids``,
``anneal`` and ``execute`` read and write its streams and journals in place.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sae.batch import AnnealStats, ProgramBatch
from sae.layout import Capacities
from sae.profile import Profiler, maybe_scope


@dataclass
class BatchResult:
    """One embedded batch: an L2-normalized float32 row per document, in the order given,
    and what the annealing loop did to the batch."""

    embeddings: np.ndarray  # (n, dim) float32
    stats: AnnealStats


class PendingBatch(Protocol):
    """A submitted batch."""

    def result(self) -> BatchResult:
        """Wait for the batch (once) and return it."""
        ...


class DoneBatch:
    """A batch computed when it was submitted (the numpy path)."""

    def __init__(self, result: BatchResult) -> None:
        self._result = result

    def result(self) -> BatchResult:
        return self._result


def step_limit(algorithm_steps: int, max_steps: int | None) -> int:
    """The steps an anneal may take: the Algorithm's ``params.max_steps``, or fewer when
    ``Backend.anneal`` is given ``max_steps``."""
    if max_steps is None:
        return algorithm_steps
    if max_steps < 0:
        raise ValueError(f"anneal: max_steps must be >= 0, got {max_steps}")
    return min(algorithm_steps, max_steps)


class Backend(Protocol):
    """Runs the annealing loop and the VM: a batch of token ids, or a host batch in place."""

    #: "cpu" or "gpu"
    name: str
    #: a human description: "numpy" or the adapter name and graphics backend
    description: str
    #: set by the engine; a backend reports its own scopes, passes and counters into it
    profiler: Profiler | None
    #: whether batches may run from several threads at once (the numpy path: it keeps
    #: no state between calls); otherwise the engine keeps two batches in flight
    concurrent_batches: bool
    #: documents per batch when the engine is given no ``batch_size``
    default_batch: int

    def submit_batch(self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray) -> PendingBatch:
        """Embed documents given as token ids (each at most the stream capacity long).

        ``lengths`` are their token counts. The GPU path returns once the work is
        submitted; call ``result()`` for the embeddings.
        """
        ...

    def bids(self, batch: ProgramBatch) -> np.ndarray:
        """Bid keys of the current streams, ``(n, stream capacity, rules)`` uint32, 0 = no bid."""
        ...

    def anneal(self, batch: ProgramBatch, max_steps: int | None = None) -> None:
        """Rewrite every stream of the batch and fill its journal (docs/ENGINE.md §3).

        ``max_steps`` stops the loop after that many steps, as if the Algorithm's
        ``params.max_steps`` were that (never more): the streams as they stand at the
        start of that step (the viewer's timeline). None: the Algorithm's.
        """
        ...

    def execute(self, batch: ProgramBatch) -> np.ndarray:
        """Run the VM: one L2-normalized float32 vector per document, ``(n, dim)``."""
        ...

    def prepare(self) -> None:
        """Do now the one-time work that would otherwise fall on the first batches: the
        numpy path computes a transformed vector row the first time a batch needs it
        (:class:`~sae.vector_table.VectorTable`), the GPU uploads every table when made."""
        ...

    def close(self) -> None:
        """Release what the backend holds for its batches (device buffers, host batches).

        Idempotent; the backend is not used afterwards (the numpy and GPU backends then
        raise ``ValueError``). What it shares with others in the process (a GPU device,
        compiled pipelines, vector tables) stays for them.
        """
        ...


class HostBatches:
    """``submit_batch`` for a backend that works on host batches (the numpy path).

    Each thread widens into its own :class:`ProgramBatch`, allocated once and reused,
    then runs the backend's ``anneal`` and ``execute`` on it: the same work, and the
    same allocations, as before the interface took token ids.
    """

    def __init__(self, caps: Capacities) -> None:
        self._caps = caps
        self._local = threading.local()

    def release(self) -> None:
        """Drop every thread's batch (a backend's ``close``): the threads that embedded may
        outlive the backend, and each holds tens of MB of host batch."""
        self._local = threading.local()

    def batch(self, size: int) -> ProgramBatch:
        """This thread's batch, with room for ``size`` documents."""
        batch = getattr(self._local, "batch", None)
        if batch is None or batch.size < size:
            batch = ProgramBatch(size, self._caps)
            self._local.batch = batch
        return batch


def run_host_batch(backend, batches: HostBatches, symbol_rows: np.ndarray, token_ids: Sequence[Sequence[int]],
                   lengths: np.ndarray) -> DoneBatch:
    """Widen, anneal and execute on this thread's host batch (the numpy path's ``submit_batch``)."""
    prof = backend.profiler
    batch = batches.batch(len(token_ids))
    with maybe_scope(prof, "widen"):
        batch.widen(list(token_ids), symbol_rows, lengths)
    with maybe_scope(prof, "anneal"):
        backend.anneal(batch)
    with maybe_scope(prof, "execute"):
        embeddings = backend.execute(batch)
    return DoneBatch(BatchResult(embeddings, batch.stats))
