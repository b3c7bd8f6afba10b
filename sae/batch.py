"""ProgramBatch: the preallocated buffers one batch of documents lives in.

One structured array of ProgramItems (documents × stream capacity) with lengths,
and the journal of every attempted rewrite. Both backends read and write these
exact bytes; the engine allocates them once and reuses them for every batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from sae.layout import JOURNAL_ENTRY, JOURNAL_WORDS, PROGRAM_ITEM, Q16_ONE, Capacities, F, Op, item_words


def lengths_of(token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """``(n,)`` uint32 lengths of tokenized texts."""
    return np.fromiter(map(len, token_ids), dtype=np.uint32, count=len(token_ids))


def check_lengths(lengths: np.ndarray, caps: Capacities, caller: str) -> np.ndarray:
    """``lengths``, after a ``ValueError`` naming ``caller`` if a text is longer than the
    stream capacity (an Engine cuts such texts into windows, or truncates them)."""
    if len(lengths) and int(lengths.max()) > caps.stream:
        raise ValueError(f"{caller}: a text has {int(lengths.max())} tokens, more than the stream capacity "
                         f"{caps.stream} (an Engine with long_texts=\"truncate\" truncates them in tokenize)")
    return lengths


def token_lengths(token_ids: Sequence[Sequence[int]], caps: Capacities, caller: str) -> np.ndarray:
    """:func:`lengths_of`, checked by :func:`check_lengths`."""
    return check_lengths(lengths_of(token_ids), caps, caller)


def as_documents(token_ids: Iterable[Sequence[int]], caller: str) -> Sequence[Sequence[int]]:
    """``token_ids`` as a sequence of documents (a generator is read into a list), after a
    ``TypeError`` naming ``caller`` (and the text) unless it is an iterable of sequences:
    ``None``, a flat list of ids or a set of them failed deep inside a batch."""
    if token_ids is None or isinstance(token_ids, str | bytes | set | frozenset | dict):
        raise TypeError(f"{caller}: expected a list of token id lists, got {type(token_ids).__name__}")
    if not isinstance(token_ids, Sequence | np.ndarray):
        try:
            token_ids = list(token_ids)  # a generator, as Engine.embed takes one
        except TypeError:
            raise TypeError(f"{caller}: expected a list of token id lists, got {type(token_ids).__name__}") from None
    for i, ids in enumerate(token_ids):
        if not isinstance(ids, Sequence | np.ndarray) or isinstance(ids, str | bytes):
            why = " (a set has no order to embed)" if isinstance(ids, set | frozenset) else ""
            raise TypeError(f"{caller}: text {i} is a {type(ids).__name__}, not a sequence of token ids{why}")
    return token_ids


def check_token_ids(token_ids: Sequence[Sequence[int]], symbols: int, caller: str) -> None:
    """Raise ``ValueError``, naming ``caller``, the text and the id, unless every token id is
    an integer in ``0 .. symbols - 1``. (The tokenizer only makes such ids; this guards ids
    from elsewhere, which the numpy path would index with and the GPU read out of bounds.)"""
    ids = list(chain.from_iterable(token_ids))
    try:
        flat = np.asarray(ids)
    except ValueError:  # ragged: a document of nested lists; named below
        flat = None
    # A bool among ints becomes an int in the array: looked for apart (by type: 1 == True).
    if not ids or (flat is not None and flat.ndim == 1 and flat.dtype.kind in "iu" and int(flat.min()) >= 0
                   and int(flat.max()) < symbols and bool not in set(map(type, ids))):
        return
    for i, ids in enumerate(token_ids):
        for t in ids:
            if not isinstance(t, int | np.integer) or isinstance(t, bool):
                raise ValueError(f"{caller}: text {i} has a token id of type {type(t).__name__}, not an integer")
            if not 0 <= int(t) < symbols:
                raise ValueError(f"{caller}: text {i} has token id {int(t)}, outside 0..{symbols - 1}")


@dataclass
class AnnealStats:
    """What the annealing loop did to one batch, set by the backend that ran it."""

    steps: int = 0  #: steps in which some document of the batch was still live
    committed: int = 0  #: rewrites committed
    reverted: int = 0  #: rewrites reverted by the health check


class ProgramBatch:
    """Preallocated ProgramStreams and journals for up to ``size`` documents."""

    def __init__(self, size: int, caps: Capacities) -> None:
        self.caps = caps
        self.items = np.zeros((size, caps.stream), dtype=PROGRAM_ITEM)
        self.lengths = np.zeros(size, dtype=np.uint32)
        self.journal = np.zeros((size, caps.journal), dtype=JOURNAL_ENTRY)
        self.journal_len = np.zeros(size, dtype=np.uint32)
        self.n = 0  # documents in use
        self.stats = AnnealStats()  # of the last anneal of this batch
        self._used = (0, 0)  # documents and items per stream the last batch may have written

    @property
    def size(self) -> int:
        return self.items.shape[0]

    def widen(
        self, token_ids: list[list[int]] | list[np.ndarray], symbol_rows: np.ndarray, lengths: np.ndarray | None = None
    ) -> None:
        """Load documents: every token becomes one ACC item (docs/ENGINE.md §1).

        Token lists must already be truncated to the stream capacity. ``lengths``
        (their lengths, when the caller has them) saves counting again.
        """
        n = len(token_ids)
        if n > self.size:
            raise ValueError(f"ProgramBatch.widen: {n} documents exceed the batch size {self.size}")
        # The new batch overwrites every word of its own (n, width) block below; of
        # what the previous batch wrote, clear only the rest. Streams never grow past
        # their widened length, nor journals past journal_len, so the rest is zero.
        if lengths is None:
            lengths = np.fromiter(map(len, token_ids), dtype=np.uint32, count=n)
        lengths = lengths.astype(np.uint32, copy=False)
        width = int(lengths.max()) if n else 0
        all_words = item_words(self.items)
        docs, used = self._used
        if docs:
            all_words[: min(docs, n), width:used] = 0
            all_words[n:docs, :used] = 0
            self.journal.view(np.uint32)[:docs, : int(self.journal_len[:docs].max()) * JOURNAL_WORDS] = 0
        self.n = n
        self.stats = AnnealStats()
        self.journal_len[:n] = 0
        self._used = (n, width)
        self.lengths[:n] = lengths
        if width == 0:
            return
        present = np.arange(width) < lengths[:, None]  # (n, width): the items that exist
        tokens = np.zeros((n, width), dtype=np.uint32)
        if isinstance(token_ids[0], np.ndarray) and token_ids[0].dtype == np.uint32:
            # uint32 arrays (a worker process's shared batch): join them at once
            tokens[present] = np.concatenate(token_ids)
        else:
            tokens[present] = np.fromiter(chain.from_iterable(token_ids), dtype=np.uint32, count=int(lengths.sum()))
        words = all_words[:n, :width]
        on = present.astype(np.uint32)
        words[..., F.SYMBOL] = tokens
        words[..., F.TOKEN] = tokens
        words[..., F.POS] = np.arange(width, dtype=np.uint32) * on
        words[..., F.SPAN] = on
        words[..., F.OPCODE] = int(Op.ACC) * on
        words[..., F.ARG0] = np.where(present, symbol_rows[tokens], 0)
        words[..., F.ARG1] = Q16_ONE * on
        words[..., F.MOD] = 0
        words[..., F.MARKS] = 0

    def max_length(self) -> int:
        """The longest document now in the batch (streams never grow)."""
        return int(self.lengths[: self.n].max()) if self.n else 0
