"""Rows: the documents of a batch laid end to end in the annealer's planes.

The numpy annealer works on ``(rows, width)`` planes. One document per row pads every
text to the longest of its batch: a service's batch of mixed lengths (most texts
short, one long) then spends most of each plane on items that do not exist. Packed
rows hold several documents each, one after another with an empty item between
them, so the planes follow the items rather than the longest text.

Nothing of a document's annealing depends on where it sits. Matching never crosses
a document: an empty item fails every element test (ENGINE.md §2), so adjacent
elements, slid tests and runs stop at the one between documents, and a gap stops
at the end of its own stream (``Matcher.match``). Start and end anchors, and the
item a stopped run examined, come from each position's own stream
(:meth:`Rows.bounds`); anchors in the bid keys are row positions, which order a
document's anchors as its own positions do.

Documents keep the batch's order in the rows, so the documents of any set of rows
are contiguous runs of the batch's per-document state (lengths, potentials,
inhibition, journals).
"""

from __future__ import annotations

import numpy as np

from sae.batch import ProgramBatch
from sae.layout import ITEM_WORDS, item_words

#: Empty items between two documents in a row.
SEPARATOR = 1

#: Pack only when the rows' planes would be at most this share of one-document-per-row
#: planes: packing costs two copies of the items, which a small saving does not repay.
PACK_WHEN = 0.75


class Rows:
    """Where each document of a batch sits in the annealer's ``(rows, width)`` planes."""

    def __init__(self, words: np.ndarray, row_of: np.ndarray, start: np.ndarray, length: np.ndarray,
                 packed: bool) -> None:
        self.words = words  #: (rows, width, ITEM_WORDS) uint32
        self.row_of = row_of  #: (docs,) int64: the row of each document (ascending)
        self.start = start  #: (docs,) int64: where it begins in its row
        self.length = length  #: (docs,) int64: its items now
        self.packed = packed  #: False: document j is row j, from position 0 (the batch's own items)
        self.width = words.shape[1]
        self.count = words.shape[0]
        self._place_docs()

    @classmethod
    def of(cls, batch: ProgramBatch, pack_when: float = PACK_WHEN) -> Rows:
        """The batch's documents in rows: packed in order of the batch (next fit into rows
        as wide as the longest document) when that takes at most ``pack_when`` as many
        rows as documents, else one per row (``pack_when`` 1: always packed, 0: never)."""
        n, width = batch.n, batch.max_length()
        lengths = batch.lengths[:n].astype(np.int64)
        # Rows hold no more than their width in items and separators: when even that many
        # rows are too many (texts of about one length), the placement is not worth finding.
        fewest = (int(lengths.sum()) + SEPARATOR * n) / (width + SEPARATOR)
        if fewest <= pack_when * n:
            row_of, start = _next_fit(lengths, width)
            if row_of[-1] + 1 <= pack_when * n:
                packed = np.zeros((int(row_of[-1]) + 1, width, ITEM_WORDS), dtype=np.uint32)
                _records(packed)[_flat_items(lengths, row_of * width + start)] = _records(item_words(batch.items))[
                    _flat_items(lengths, _doc_base(batch))]
                return cls(packed, row_of, start, lengths, packed=True)
        return cls(item_words(batch.items)[:n, :width], np.arange(n), np.zeros(n, np.int64), lengths, packed=False)

    def _place_docs(self) -> None:
        """Per position, the document whose slot holds it (its items, then the empty items up
        to the next document's start): every row begins with a document, so every position has one."""
        if not self.packed:
            self.doc_at = np.broadcast_to(self.row_of[:, None], (self.count, self.width))
            self.row_docs = np.arange(self.count + 1)
            return
        begins = self.row_of * self.width + self.start  # ascending: documents are in row order
        slots = np.diff(begins, append=self.count * self.width)
        self.doc_at = np.repeat(np.arange(len(begins)), slots).reshape(self.count, self.width)
        self.row_docs = np.searchsorted(self.row_of, np.arange(self.count + 1))  # docs of row r: [r], [r + 1]

    def docs_in(self, rows: np.ndarray) -> np.ndarray:
        """The documents of ``rows`` (ascending), ascending."""
        if not self.packed:
            return rows
        first = self.row_docs[rows]
        return _flat_items(self.row_docs[rows + 1] - first, first)  # each row's documents are consecutive

    def bounds(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """First and last item of the document at each position of ``rows`` (default: all),
        in row coordinates, for :meth:`sae.cpu.match.Matcher.segment_view`."""
        if not self.packed:
            length = self.length if rows is None else self.length[rows]
            return np.zeros((len(length), 1), np.int64), length[:, None] - 1
        doc = self.doc_at if rows is None else self.doc_at[rows]
        first = self.start[doc]
        return first, first + self.length[doc] - 1

    def doc_sums(self, at: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per document of ``rows`` (default: all), the sum of ``at`` (``(len(rows), width)``) over its slot."""
        if not self.packed:
            return at.sum(axis=1)
        doc = self.doc_at if rows is None else self.doc_at[rows]
        docs = np.arange(len(self.length)) if rows is None else self.docs_in(rows)
        # float64 sums of int64 scores are exact: a document's potential stays below 2**31 (sae.layout)
        sums = np.bincount(doc.ravel(), weights=at.ravel(), minlength=len(self.length))
        return sums[docs].astype(np.int64)

    def removed(self, dead: np.ndarray) -> None:
        """Account for the rewrite's compaction of ``dead`` items (``(rows, width)`` bool): each
        row closed up over them, so a document loses its own and moves left by those before it."""
        self.length -= np.bincount(self.doc_at[dead], minlength=len(self.length))
        if self.packed:
            before = np.cumsum(dead, axis=1)[self.row_of, np.maximum(self.start - 1, 0)]
            self.start -= np.where(self.start > 0, before, 0)
            self._place_docs()

    def unpack(self, batch: ProgramBatch) -> None:
        """Write the annealed documents and their lengths back into the batch (whose lengths
        are still the widened ones: the loop keeps them here)."""
        n = len(self.length)
        if self.packed:
            items, base = _records(item_words(batch.items)), _doc_base(batch)
            items[_flat_items(self.length, base)] = _records(self.words)[
                _flat_items(self.length, self.row_of * self.width + self.start)]
            freed = batch.lengths[:n].astype(np.int64) - self.length  # by merges
            items[_flat_items(freed, base + self.length)] = _records(np.zeros((1, 1, ITEM_WORDS), np.uint32))
        batch.lengths[:n] = self.length


def _records(words: np.ndarray) -> np.ndarray:
    """Contiguous ``(..., ITEM_WORDS)`` uint32 words as one flat array of opaque items: moved
    whole, an item is one copy rather than ITEM_WORDS."""
    return words.reshape(-1, ITEM_WORDS).view(np.dtype((np.void, 4 * ITEM_WORDS)))[:, 0]


def _doc_base(batch: ProgramBatch) -> np.ndarray:
    """Where each document's first item is in the batch's items, flattened."""
    return np.arange(batch.n, dtype=np.int64) * batch.items.shape[1]


def _flat_items(lengths: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Flat indices ``base[j] + i`` of item ``i < lengths[j]`` of every document ``j``, in order."""
    return np.repeat(base - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))


def _next_fit(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and start of each document, in order, each row filled until the next one does not fit."""
    row_of, start = [], []
    row = end = 0
    for length in lengths.tolist():
        if length == 0:  # an empty document owns no position: it needs no room
            row_of.append(row)
            start.append(end)
            continue
        at = end + SEPARATOR if end else 0
        if end and at + length > width:
            row, at = row + 1, 0
        row_of.append(row)
        start.append(at)
        end = at + length
    return np.array(row_of, dtype=np.int64), np.array(start, dtype=np.int64)


__all__ = ["PACK_WHEN", "SEPARATOR", "Rows"]
