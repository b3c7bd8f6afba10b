"""Applying rewrites on the numpy path (docs/ENGINE.md §4)."""

from __future__ import annotations

import numpy as np

from sae.cpu.match import Matcher, StreamView
from sae.layout import KEEP, Q16_ONE, RULE_MERGE, F, Op


def apply_rewrites(
    m: Matcher,
    words: np.ndarray,
    lengths: np.ndarray,
    docs: np.ndarray,
    anchors: np.ndarray,
    rules: np.ndarray,
    symbol_rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply rule ``rules[i]`` at ``anchors[i]`` to document ``docs[i]``, in place.

    ``words`` is the ``(D, L, ITEM_WORDS)`` uint32 view of the batch; documents
    sharing a rule are applied together. Returns, per document, the last matched
    position (before the rewrite) and how far later items shifted left (``k - 1``
    for a merge, else 0): what the incremental bid update needs.
    """
    last = np.zeros(len(docs), dtype=np.int64)
    shift = np.zeros(len(docs), dtype=np.int64)
    for r in np.unique(rules):
        sel = rules == r
        d = docs[sel]
        v = m.view(words[d], lengths[d])
        found = m.match(v, anchors[sel][:, None], int(r))
        assert found.ok.all(), "a selected bid no longer matches: selection and apply disagree"
        q = found.q[:, 0, :]
        rule = m.rules[r]
        last[sel] = q[:, -1]
        if rule["kind"] == RULE_MERGE:
            shift[sel] = q.shape[1] - 1
            _merge(words, lengths, d, q, found.phrase[:, 0], int(r), rule, m.vocab_size, symbol_rows)
        else:
            _rewrite(words, d, q, int(r), rule)
    return last, shift


def _set_fields(words: np.ndarray, d: np.ndarray, pos: np.ndarray, rule: np.void, e: int) -> None:
    for field, col in (("set_opcode", F.OPCODE), ("set_arg0", F.ARG0), ("set_arg1", F.ARG1)):
        value = int(rule[field][e])
        if value != KEEP:
            words[d, pos, col] = np.uint32(value & 0xFFFFFFFF)


def _rewrite(words: np.ndarray, d: np.ndarray, q: np.ndarray, r: int, rule: np.void) -> None:
    k = q.shape[1]
    old = words[d[:, None], q]  # (G, k, ITEM_WORDS) copy
    bit = np.uint32(1 << r)
    for e in range(k):
        words[d, q[:, e]] = old[:, int(rule["perm"][e])]
    for e in range(k):
        _set_fields(words, d, q[:, e], rule, e)
        words[d, q[:, e], F.FIRED] |= bit


def _merge(
    words: np.ndarray,
    lengths: np.ndarray,
    d: np.ndarray,
    q: np.ndarray,
    phrase: np.ndarray,
    r: int,
    rule: np.void,
    vocab_size: int,
    symbol_rows: np.ndarray,
) -> None:
    k = q.shape[1]
    span = words[d[:, None], q, F.SPAN].sum(axis=1, dtype=np.uint32)
    fired = np.bitwise_or.reduce(words[d[:, None], q, F.FIRED], axis=1) | np.uint32(1 << r)
    first = q[:, 0]
    # Shift everything after the span left by k - 1, zero the freed tail.
    length = words.shape[1]
    j = np.arange(length)[None, :]
    src = np.where(j > first[:, None], j + (k - 1), j)
    shifted = np.take_along_axis(words[d], np.minimum(src, length - 1)[..., None], axis=1)
    new_len = lengths[d].astype(np.int64) - (k - 1)
    shifted[j >= new_len[:, None]] = 0
    symbol = (vocab_size + phrase).astype(np.uint32)
    shifted[np.arange(len(d)), first, F.SYMBOL] = symbol
    shifted[np.arange(len(d)), first, F.SPAN] = span
    shifted[np.arange(len(d)), first, F.OPCODE] = int(Op.ACC)
    shifted[np.arange(len(d)), first, F.ARG0] = symbol_rows[symbol]
    shifted[np.arange(len(d)), first, F.ARG1] = Q16_ONE
    shifted[np.arange(len(d)), first, F.FIRED] = fired
    # token and pos stay those of the first item (already in place).
    words[d] = shifted
    lengths[d] = new_len.astype(lengths.dtype)
    _set_fields(words, d, first, rule, 0)


__all__ = ["StreamView", "apply_rewrites"]
