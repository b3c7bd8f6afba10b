"""Every vector an item can gather: the plain rows and their transformed copies (docs/ENGINE.md §5)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class VectorTable:
    """Every ``x`` of §5 an item can have: ``vectors[row]``, or ``T[mod-1] · vectors[row] + t[mod-1]``.

    One ``((transforms + 1) * rows, dim)`` float32 table, so the VM gathers a
    transformed item exactly like a plain one (``row + mod * rows``). Transformed
    rows are computed the first time a batch needs them and kept, so an engine that
    embeds a few texts never pays for all of them (about 1.5 s for the default's five
    transforms of 14,557 rows on a 2-core machine). They are computed a whole
    block of ``BLOCK`` rows at a time, always the same block: a matrix product's
    rounding can depend on how many rows it multiplies together (BLAS picks its kernel
    by shape), so computing exactly the rows a batch happens to need would make a
    text's embedding depend on what was embedded before it. And in float64, rounded
    once to float32: BLAS's float32 kernels differ between CPUs (AVX2, AVX-512, …) in
    the order they sum (OpenBLAS's Sandybridge kernels against its Haswell ones changed
    1.5 million float32 values of the train sentences' embeddings); in float64 that
    order moves a value by about 10⁻¹⁶, below float32's rounding, so the table holds
    the same bytes whatever the kernel (0 values differed; a value within 10⁻¹⁶ of a
    rounding boundary still can, about one in 10⁸). Safe to share between threads.

    Both backends gather from it: the numpy VM fills it as batches need rows, the GPU
    uploads it whole (:meth:`complete`), so both read the same floats.
    """

    BLOCK = 64

    def __init__(self, vectors: np.ndarray, transforms: np.ndarray | None) -> None:
        self.rows, self.dim = vectors.shape
        n = 0 if transforms is None else len(transforms)
        self.transforms = None if transforms is None else np.asarray(transforms, dtype=np.float64)
        self.table = np.empty(((n + 1) * self.rows, self.dim), dtype=np.float32)
        self.table[: self.rows] = vectors
        self.ready = np.zeros((n + 1) * self.rows, dtype=bool)
        self.ready[: self.rows] = True
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, vectors: np.ndarray, transforms: np.ndarray | None) -> VectorTable:
        """The table of these read-only arrays, shared by every caller that passes the same ones.

        Algorithms that share their vectors and transforms (an evolution's genomes on one
        base, several engines on one Algorithm) then compute each transformed block once,
        not once per backend: filling the float64 blocks anew made each evaluation of the
        default's search about 0.78 s instead of 0.45 s. Blocks are the same bytes whoever fills
        them, so sharing changes no result. Writable arrays (which could change under the
        table) get a table of their own. The last :data:`SHARED_TABLES` tables are kept.
        """
        if vectors.flags.writeable or (transforms is not None and transforms.flags.writeable):
            return cls(vectors, transforms)
        key = (id(vectors), id(transforms))
        with _SHARED_LOCK:
            hit = _SHARED.get(key)
            if hit is not None:
                _SHARED.move_to_end(key)
                return hit[2]
            table = cls(vectors, transforms)
            _SHARED[key] = (vectors, transforms, table)  # the arrays held: their ids stay theirs
            while len(_SHARED) > SHARED_TABLES:
                _SHARED.popitem(last=False)
            return table

    def index(self, rows: np.ndarray, mods: np.ndarray) -> np.ndarray:
        """Table rows of items ``(rows, mods)``, computing the transformed ones not there yet."""
        at = rows.astype(np.int64) + mods.astype(np.int64) * self.rows
        if self.transforms is None or not len(self.transforms):
            return at
        missing = ~self.ready[at]
        if missing.any():
            self._fill(np.unique(at[missing]))
        return at

    def _fill(self, at: np.ndarray) -> None:
        with self._lock:
            at = at[~self.ready[at]]  # another thread may have filled some meanwhile
            mod, row = np.divmod(at, self.rows)
            for t, block in np.unique(np.stack([mod, row // self.BLOCK], axis=1), axis=0):
                lo, hi = block * self.BLOCK, min((block + 1) * self.BLOCK, self.rows)
                tr = self.transforms[int(t) - 1]
                plain = self.table[lo:hi].astype(np.float64)
                self.table[t * self.rows + lo : t * self.rows + hi] = plain @ tr[:, :-1].T + tr[:, -1]
                self.ready[t * self.rows + lo : t * self.rows + hi] = True

    def complete(self) -> np.ndarray:
        """The whole table, every transformed row computed (the same blocks as on demand)."""
        if not self.ready.all():
            self._fill(np.flatnonzero(~self.ready))
        return self.table


#: Tables :meth:`VectorTable.shared` keeps (the most recently used).
SHARED_TABLES = 2
_SHARED: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray | None, VectorTable]] = OrderedDict()
_SHARED_LOCK = threading.Lock()
