"""Texts longer than the stream capacity: cut into windows, embedded, and summed back.

A document holds at most ``Capacities.stream`` tokens. A longer text is cut into the
fewest windows that fit, of nearly equal length, each cut moved back to the start of a
word (a WordPiece ``##`` continuation never starts a window, unless the cut would
otherwise shrink its window below half). Every window is annealed and run as a document
of its own, and the text's embedding is the sum of its windows' embeddings weighted by
their tokens, L2-normalized: an estimate of the document the stream could not hold.
Measured against the teacher on 400 train-sentence concatenations of 131–250 tokens
(``tools/long_texts.py``; docs/ENGINE.md, "Texts longer than the stream"): cosine to
the teacher 0.511 for the first 128 tokens, 0.611 with windows.

Windows are a host-side step on token ids, before any backend; both backends anneal
the same documents, so CPU and GPU agree on windowed texts as they do on any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def word_starts(tokenizer) -> np.ndarray:  # (tokenizers.Tokenizer) -> (vocab,) bool
    """Per token id, whether a window may start there: not a WordPiece continuation
    (every id of a tokenizer without a continuation prefix)."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    prefix = getattr(tokenizer.model, "continuing_subword_prefix", None)
    starts = np.ones(size, dtype=bool)
    if prefix:
        for token, i in tokenizer.get_vocab(with_added_tokens=True).items():
            if token.startswith(prefix):
                starts[i] = False
    return starts


def split(ids: Sequence[int], capacity: int, starts: np.ndarray) -> list[Sequence[int]]:
    """``ids`` as windows of at most ``capacity`` tokens (``[ids]`` when it fits)."""
    n = len(ids)
    if n <= capacity:
        return [ids]
    windows = []
    begin = 0
    while n - begin > capacity:
        left = -(-(n - begin) // capacity)  # windows still needed
        want = -(-(n - begin) // left)  # ceil: every window at most `capacity`
        cut = begin + want
        floor = begin + max(1, want // 2)
        while cut > floor and not _starts_word(ids[cut], starts):
            cut -= 1
        if not _starts_word(ids[cut], starts):
            cut = begin + want  # one long word: cut inside it
        windows.append(ids[begin:cut])
        begin = cut
    windows.append(ids[begin:])
    return windows


def cut_to_capacity(token_ids: list[Sequence[int]], capacity: int) -> int:
    """Cut, in place, every text of ``token_ids`` longer than ``capacity`` to its first
    ``capacity`` tokens (``long_texts="truncate"``); returns how many were cut."""
    cut = 0
    for i, ids in enumerate(token_ids):
        if len(ids) > capacity:
            token_ids[i] = ids[:capacity]
            cut += 1
    return cut


def _starts_word(token: int, starts: np.ndarray) -> bool:
    return not 0 <= token < len(starts) or bool(starts[token])


@dataclass
class Windows:
    """The documents of a list of texts, and how to sum their embeddings back per text."""

    documents: list[Sequence[int]]  #: every text's windows, in text order
    owner: np.ndarray | None  #: (documents,) the text of each document; None: one per text
    texts: int

    @classmethod
    def of(cls, token_ids: Sequence[Sequence[int]], capacity: int, starts: np.ndarray) -> Windows:
        if all(len(ids) <= capacity for ids in token_ids):
            return cls(list(token_ids), None, len(token_ids))
        documents, owner = [], []
        for text, ids in enumerate(token_ids):
            parts = split(ids, capacity, starts)
            documents.extend(parts)
            owner.extend([text] * len(parts))
        return cls(documents, np.asarray(owner, dtype=np.int64), len(token_ids))

    @property
    def windowed(self) -> bool:
        """Some text spans several documents."""
        return self.owner is not None

    def owners(self) -> np.ndarray:
        """``(documents,)`` int64: the text of each document."""
        return self.owner if self.owner is not None else np.arange(self.texts, dtype=np.int64)

    def lengths(self) -> np.ndarray:
        """``(documents,)`` int64: each document's tokens."""
        return np.fromiter(map(len, self.documents), dtype=np.int64, count=len(self.documents))

    def text_lengths(self) -> np.ndarray:
        """``(texts,)`` int64: each text's tokens, over its documents."""
        return np.bincount(self.owners(), weights=self.lengths(), minlength=self.texts).astype(np.int64)

    def starts(self) -> np.ndarray:
        """``(documents,)`` int64: where each document starts among its text's tokens (0 for
        a text's first), so that a position in a window reads as one in the whole text."""
        before = np.concatenate(([0], np.cumsum(self.lengths())[:-1]))
        owner = self.owners()
        return before - before[np.searchsorted(owner, owner)]  # documents are in text order

    def combine(self, vectors: np.ndarray) -> np.ndarray:
        """Per text, the token-weighted sum of its documents' ``vectors``, L2-normalized
        (float32; the zero vector where the sum is zero). A text of one document keeps its
        vector's bytes: it embeds the same whatever else is in the call."""
        if self.owner is None:
            return vectors
        counts = np.bincount(self.owner, minlength=self.texts)
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # documents are in text order
        out = vectors[first].copy()
        for text in np.flatnonzero(counts > 1):
            docs = range(first[text], first[text] + counts[text])
            weights = np.array([len(self.documents[d]) for d in docs], dtype=np.float64)
            total = (vectors[first[text] : first[text] + counts[text]].astype(np.float64) * weights[:, None]).sum(axis=0)
            norm = np.linalg.norm(total)
            out[text] = (total / norm).astype(np.float32) if norm > 0 else 0.0  # every window silenced
        return out
