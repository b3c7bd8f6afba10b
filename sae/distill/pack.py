"""Packing fitted vectors into an Algorithm within a size budget."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sae.algorithm import Algorithm
from sae.gpu.tables import dim4


def row_budget(alg: Algorithm, dim: int, max_bytes: int, n_transforms: int, gpu_binding_bytes: int) -> int:
    """Vector rows that fit in ``max_bytes`` beside the other files (float16 vectors and
    transforms), and whose GPU float table (weights, vectors and a float32 copy per
    transform: :func:`sae.gpu.tables.float_table_bytes`) fits one storage binding of
    ``gpu_binding_bytes``, so the Algorithm runs on every adapter that allows that much."""
    fixed = len(alg.tokenizer_json.encode()) + 8 * alg.n_symbols + alg.phrases.nbytes + 4 * alg.n_phrases
    fixed += 2 * n_transforms * dim * (dim + 1)
    fixed += 64 * 1024  # algorithm.json and .npy headers, generously
    on_disk = (max_bytes - fixed) // (2 * dim + 4)
    # float_table_bytes = 16 * (ceil(rows / 4) + (n_transforms + 1) * rows * dim4) with
    # ceil(rows / 4) <= rows / 4 + 1: solved for rows, this many always fit.
    on_gpu = (4 * (gpu_binding_bytes // 16 - 1)) // (1 + 4 * (n_transforms + 1) * dim4(dim))
    return min(on_disk, on_gpu)


def keep_mask(alg: Algorithm, vocab: list[str], seen: np.ndarray, max_rows: int) -> np.ndarray:
    """Symbols that get their own row (at most ``max_rows``): every phrase, every token
    seen in training, then unseen plain-ASCII tokens in vocabulary order (WordPiece ids
    run roughly by frequency); ``[unused…]`` and other bracketed specials never."""
    keep = np.zeros(alg.n_symbols, dtype=bool)
    keep[alg.vocab_size :] = True
    keep[seen] = True
    for i, w in enumerate(vocab):
        if keep.sum() >= max_rows:
            break
        if not keep[i] and w.isascii() and not (w.startswith("[") and w.endswith("]")):
            keep[i] = True
    return keep


def compress(alg: Algorithm, full: np.ndarray, keep: np.ndarray) -> Algorithm:
    """Unit float16 rows of the kept symbols, their norms as weights.

    Every other token shares the row of its nearest kept token (cosine of the fitted
    vectors), through ``symbol_rows``.
    """
    kept = np.flatnonzero(keep)
    proj = full[kept]
    norms = np.linalg.norm(proj, axis=1)
    unit = np.divide(proj, norms[:, None], out=np.zeros_like(proj), where=norms[:, None] > 0)
    symbol_rows = np.zeros(alg.n_symbols, dtype=np.int32)
    symbol_rows[kept] = np.arange(kept.size, dtype=np.int32)
    dropped = np.flatnonzero(~keep)
    if dropped.size:
        d = full[dropped]
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        kept_tokens = np.flatnonzero(kept < alg.vocab_size)
        for start in range(0, dropped.size, 2048):
            sims = d[start : start + 2048] @ unit[kept_tokens].T
            symbol_rows[dropped[start : start + 2048]] = kept_tokens[np.argmax(sims, axis=1)]
    return replace(alg, vectors=unit.astype(np.float16).astype(np.float32), weights=norms.astype(np.float32),
                   symbol_rows=symbol_rows)
