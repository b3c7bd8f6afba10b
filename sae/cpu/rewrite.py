"""Applying rewrites on the numpy path (docs/ENGINE.md §4)."""

from __future__ import annotations

import numpy as np

from sae.cpu.match import Matcher, StreamView, decode_key
from sae.layout import KEEP, Q16_ONE, RULE_MERGE, F, Op


def apply_winners(
    m: Matcher, words: np.ndarray, lengths: np.ndarray, winners: np.ndarray, symbol_rows: np.ndarray
) -> np.ndarray | None:
    """Apply every bid of ``winners`` to its document, in place (docs/ENGINE.md §3 step 5).

    ``words`` is a ``(G, L, ITEM_WORDS)`` uint32 array of G documents and ``lengths``
    their lengths; ``winners[g, p]`` is the key of a bid anchored at ``p`` of
    document ``g``, or 0. Winners' spans must be disjoint, so every rewrite reads
    and writes items no other one touches, and merges only mark the items they
    consume until one compaction at the end. Returns, per position, how many items
    merges left of it removed (``D`` of §3), or None when nothing was merged.
    """
    g_all, p_all = np.nonzero(winners)
    _, _, rule_all = decode_key(winners[g_all, p_all])
    v: StreamView | None = None  # only patterns with gaps are matched again
    dead: np.ndarray | None = None
    for r in np.unique(rule_all):
        sel = rule_all == r
        g, p = g_all[sel], p_all[sel]
        rule = m.rules[r]
        if v is None and m.extent[r] < 0:
            v = m.view(words, lengths)
        q, phrase = _locate(m, words, v, g, p, int(r))
        if rule["kind"] == RULE_MERGE:
            if dead is None:
                dead = np.zeros(winners.shape, dtype=bool)
            _merge_head(words, g, q, phrase, int(r), rule, m.vocab_size, symbol_rows)
            for e in range(1, q.shape[1]):
                dead[g, q[:, e]] = True
        else:
            _rewrite(words, g, q, int(r), rule)
    if dead is None:
        return None
    _compact(words, lengths, dead)
    return np.cumsum(dead, axis=1) - dead


def _locate(
    m: Matcher, words: np.ndarray, v: StreamView | None, g: np.ndarray, p: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray]:
    """Matched positions ``(W, k)`` of rule ``r``'s winners at ``(g, p)``, and their phrases (merges).

    A pattern without gaps always covers its anchor and the ``k - 1`` items after
    it; one with gaps is matched again to find where its elements landed.
    """
    rule = m.rules[r]
    k = int(rule["length"])
    if m.extent[r] < 0:
        assert v is not None
        found = m.match(v.rows(g), p[:, None], r)
        assert found.ok.all(), "a winner no longer matches: selection and apply disagree"
        return found.q[:, 0, :], np.full(len(g), -1, dtype=np.int64)
    q = p[:, None] + np.arange(k)
    phrase = np.full(len(g), -1, dtype=np.int64)
    if rule["kind"] == RULE_MERGE:
        phrase, found = m.phrase_of(words[g[:, None], q, F.SYMBOL])
        assert found.all(), "a merge winner is not a lexicon phrase: selection and apply disagree"
    return q, phrase


def _set_fields(words: np.ndarray, g: np.ndarray, pos: np.ndarray, rule: np.void, e: int) -> None:
    for field, col in (("set_opcode", F.OPCODE), ("set_arg0", F.ARG0), ("set_arg1", F.ARG1)):
        value = int(rule[field][e])
        if value != KEEP:
            words[g, pos, col] = np.uint32(value & 0xFFFFFFFF)


def _rewrite(words: np.ndarray, g: np.ndarray, q: np.ndarray, r: int, rule: np.void) -> None:
    k = q.shape[1]
    perm = [int(x) for x in rule["perm"][:k]]
    if perm != list(range(k)):
        old = words[g[:, None], q]  # (W, k, ITEM_WORDS) copy
        for e in range(k):
            words[g, q[:, e]] = old[:, perm[e]]
    bit = np.uint32(1 << r)
    for e in range(k):
        _set_fields(words, g, q[:, e], rule, e)
        words[g, q[:, e], F.FIRED] |= bit


def _merge_head(
    words: np.ndarray,
    g: np.ndarray,
    q: np.ndarray,
    phrase: np.ndarray,
    r: int,
    rule: np.void,
    vocab_size: int,
    symbol_rows: np.ndarray,
) -> None:
    """The merged item, written over the span's first item (token and pos stay its own)."""
    span = words[g[:, None], q, F.SPAN].sum(axis=1, dtype=np.uint32)
    fired = np.bitwise_or.reduce(words[g[:, None], q, F.FIRED], axis=1) | np.uint32(1 << r)
    first = q[:, 0]
    symbol = (vocab_size + phrase).astype(np.uint32)
    words[g, first, F.SYMBOL] = symbol
    words[g, first, F.SPAN] = span
    words[g, first, F.OPCODE] = int(Op.ACC)
    words[g, first, F.ARG0] = symbol_rows[symbol]
    words[g, first, F.ARG1] = Q16_ONE
    words[g, first, F.FIRED] = fired
    _set_fields(words, g, first, rule, 0)


def _compact(words: np.ndarray, lengths: np.ndarray, dead: np.ndarray) -> None:
    """Drop the dead items of each document, keeping order; the freed tail becomes zeros."""
    rows = np.flatnonzero(dead.any(axis=1))
    keep = ~dead[rows]
    g, old = np.nonzero(keep)
    new = (np.cumsum(keep, axis=1) - 1)[g, old]  # each kept item's place after the removals
    moved = np.zeros((len(rows), *words.shape[1:]), dtype=words.dtype)
    moved[g, new] = words[rows[g], old]
    words[rows] = moved  # items past a document's length are zero, so they stay zero
    lengths[rows] -= dead[rows].sum(axis=1).astype(lengths.dtype)


__all__ = ["apply_winners"]
