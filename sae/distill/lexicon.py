"""The lexicon: whole words that WordPiece splits into several pieces, with merge bonuses."""

from __future__ import annotations

from collections import Counter

import numpy as np


def words_of(tok, text: str) -> list[str]:
    """Pre-tokenized words (the tokenizer's own normalizer and pre-tokenizer)."""
    norm = tok.normalizer.normalize_str(text) if tok.normalizer else text
    return [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(norm)]


def build_lexicon(tok, texts: list[str], min_count: int, width: int) -> tuple[list[tuple[int, ...]], list[int]]:
    """Every word of ``texts`` that splits into 2..``width`` pieces and occurs at least
    ``min_count`` times: its token ids and its count, sorted by ids."""
    counts: Counter = Counter(w for text in texts for w in words_of(tok, text))
    seqs: dict[tuple[int, ...], int] = {}
    for word, n in counts.items():
        ids = tuple(tok.encode(word, add_special_tokens=False).ids)
        if 2 <= len(ids) <= width and n >= min_count:
            seqs[ids] = seqs.get(ids, 0) + n
    keys = sorted(seqs)
    return keys, [seqs[k] for k in keys]


def phrase_bonus(counts: list[int]) -> np.ndarray:
    """Extra bid score of a merge: ``min(99, 10 log2(1 + count))``, so frequent words win overlaps."""
    return np.array([min(99, round(10 * float(np.log2(1 + c)))) for c in counts], dtype=np.int32)


def windows_of(words: list[str], k: int, seed: int) -> list[str]:
    """``k`` deterministic contiguous word windows (3..n-1 words) of a sentence of ``words``."""
    n = len(words)
    if n < 5:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        size = int(rng.integers(3, n))
        start = int(rng.integers(0, n - size + 1))
        out.append(" ".join(words[start : start + size]))
    return out
