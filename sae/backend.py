"""The one small interface every backend implements; the engine never asks which."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sae.batch import ProgramBatch
from sae.profile import Profiler


class Backend(Protocol):
    """Runs the annealing loop and the VM on a :class:`ProgramBatch`, in place."""

    #: "cpu" or "gpu"
    name: str
    #: a human description: "numpy" or the adapter name and graphics backend
    description: str
    #: set by the engine; a backend reports its own scopes and passes into it
    profiler: Profiler | None
    #: whether ``anneal`` and ``execute`` may run on different batches from several
    #: threads at once (the numpy path: it keeps no state between calls)
    concurrent_batches: bool

    def bids(self, batch: ProgramBatch) -> np.ndarray:
        """Bid keys of the current streams, ``(n, stream capacity, rules)`` uint32, 0 = no bid."""
        ...

    def anneal(self, batch: ProgramBatch) -> None:
        """Rewrite every stream of the batch and fill its journal (docs/ENGINE.md §3)."""
        ...

    def execute(self, batch: ProgramBatch) -> np.ndarray:
        """Run the VM: one L2-normalized float32 vector per document, ``(n, dim)``."""
        ...
