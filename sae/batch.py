"""ProgramBatch: the preallocated buffers one batch of documents lives in.

One structured array of ProgramItems (documents × stream capacity) with lengths,
and the journal of every attempted rewrite. Both backends read and write these
exact bytes; the engine allocates them once and reuses them for every batch.
"""

from __future__ import annotations

import numpy as np

from sae.layout import JOURNAL_ENTRY, PROGRAM_ITEM, Capacities, Op, Q16_ONE


class ProgramBatch:
    """Preallocated ProgramStreams and journals for up to ``size`` documents."""

    def __init__(self, size: int, caps: Capacities) -> None:
        self.caps = caps
        self.items = np.zeros((size, caps.stream), dtype=PROGRAM_ITEM)
        self.lengths = np.zeros(size, dtype=np.uint32)
        self.journal = np.zeros((size, caps.journal), dtype=JOURNAL_ENTRY)
        self.journal_len = np.zeros(size, dtype=np.uint32)
        self.n = 0  # documents in use
        self._used = (0, 0)  # documents and items per stream the last batch may have written

    @property
    def size(self) -> int:
        return self.items.shape[0]

    def widen(self, token_ids: list[list[int]] | list[np.ndarray], symbol_rows: np.ndarray) -> None:
        """Load documents: every token becomes one ACC item (docs/ENGINE.md §1).

        Token lists must already be truncated to the stream capacity.
        """
        n = len(token_ids)
        if n > self.size:
            raise ValueError(f"ProgramBatch.widen: {n} documents exceed the batch size {self.size}")
        # Clear only what the previous batch wrote: streams never grow past their
        # widened length and journals past journal_len, so the rest is still zero.
        docs, width = self._used
        if docs:
            self.items[:docs, :width] = 0
            self.journal[:docs, : int(self.journal_len[:docs].max())] = 0
        self.n = n
        items = self.items[:n]
        self.journal_len[:n] = 0
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.uint32, count=n)
        self._used = (n, int(lengths.max()) if n else 0)
        self.lengths[:n] = lengths
        if n == 0 or lengths.max() == 0:
            return
        flat = np.concatenate([np.asarray(t, dtype=np.uint32) for t in token_ids])
        doc = np.repeat(np.arange(n), lengths)
        pos = np.arange(flat.size, dtype=np.uint32) - np.repeat(np.cumsum(lengths) - lengths, lengths).astype(np.uint32)
        target = items[doc, pos]
        target["symbol"] = flat
        target["token"] = flat
        target["pos"] = pos
        target["span"] = 1
        target["opcode"] = int(Op.ACC)
        target["arg0"] = symbol_rows[flat]
        target["arg1"] = Q16_ONE
        items[doc, pos] = target

    def max_length(self) -> int:
        """The longest document now in the batch (streams never grow)."""
        return int(self.lengths[: self.n].max()) if self.n else 0
