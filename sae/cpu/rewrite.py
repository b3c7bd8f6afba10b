"""Applying rewrites on the numpy path (docs/ENGINE.md §4)."""

from __future__ import annotations

import numpy as np

from sae.cpu.match import Matcher, StreamView
from sae.layout import ARG1_LIMIT, FLAG_TARGET, KEEP, Q16_ONE, RULE_MERGE, F, Op


def scale_q16(arg1: np.ndarray, scale: int) -> np.ndarray:
    """``clamp(trunc(arg1 * scale / 65536), ±ARG1_LIMIT)`` exactly (int64 products), as int32 bits."""
    prod = arg1.astype(np.int64) * np.int64(scale)
    out = np.sign(prod) * (np.abs(prod) >> 16)
    return np.clip(out, -ARG1_LIMIT, ARG1_LIMIT).astype(np.int32)


def apply_winners(
    m: Matcher,
    words: np.ndarray,
    lengths: np.ndarray,
    winners: np.ndarray,
    symbol_rows: np.ndarray,
    offset: np.ndarray | None = None,
    total: np.ndarray | None = None,
    located: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray | None:
    """Apply every bid of ``winners`` to its document, in place (docs/ENGINE.md §3 step 7).

    ``words`` is a ``(G, L, ITEM_WORDS)`` uint32 array of G documents and ``lengths``
    their lengths; ``winners[g, p]`` is the key of a bid anchored at ``p`` of
    document ``g``, or 0. Winners' extents must be disjoint, so every rewrite reads
    and writes items no other one touches, and merges only mark the items they
    consume until one compaction at the end. ``offset``/``total`` describe windows
    of longer streams (see :meth:`Matcher.view`). ``located``, when the caller has it,
    holds where the elements of every rule with gaps or runs land at every anchor of
    ``words`` (:meth:`Matcher.bids` ``placements``), so no winner is matched again.

    Returns the items merges consumed (``(G, L)`` bool), which each row has closed up
    over, or None when no merge won.
    """
    g_all, p_all = np.nonzero(winners)
    if g_all.size == 0:
        return None
    _, _, rule_all = m.keys.unpack(winners[g_all, p_all])
    v: StreamView | None = None  # patterns with gaps or runs not ``located`` are matched again
    dead: np.ndarray | None = None
    for r in np.unique(rule_all):
        sel = rule_all == r
        g, p = g_all[sel], p_all[sel]
        rule = m.rules[r]
        if located is not None and int(r) in located:
            first, q = (a[g, p].astype(np.int64) for a in located[int(r)])
            phrase = np.full(len(g), -1, dtype=np.int64)
        else:
            if v is None and m.extent[r] < 0:
                v = m.view(words, lengths, offset, total)
            first, q, phrase = _locate(m, words, v, g, p, int(r))
        if int(rule["kind"]) == RULE_MERGE:
            if dead is None:
                dead = np.zeros(winners.shape, dtype=bool)
            _merge_head(words, g, q, phrase, int(r), rule, m.vocab_size, symbol_rows)
            for e in range(1, q.shape[1]):
                dead[g, q[:, e]] = True
        else:
            _rewrite(words, g, first, q, int(r), rule)
    if dead is not None:
        _compact(words, lengths, dead)
    return dead


def _locate(
    m: Matcher, words: np.ndarray, v: StreamView | None, g: np.ndarray, p: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last items ``(W, k)`` of each element of rule ``r``'s winners at ``(g, p)``, and their phrases.

    A pattern without gaps or runs always covers its anchor and the ``k - 1`` items
    after it; any other is matched again to find where its elements landed.
    """
    rule = m.rules[r]
    k = int(rule["length"])
    phrase = np.full(len(g), -1, dtype=np.int64)
    if m.extent[r] < 0:
        assert v is not None
        found = m.match(v, p[:, None], r, rows=g)
        assert found.ok.all(), "a winner no longer matches: selection and apply disagree"
        return found.first[:, 0, :], found.q[:, 0, :], phrase
    q = p[:, None] + np.arange(k)
    if int(rule["kind"]) == RULE_MERGE:
        phrase, found = m.phrase_of(words[g[:, None], q, F.SYMBOL])
        assert found.all(), "a merge winner is not a lexicon phrase: selection and apply disagree"
    return q, q, phrase


def _set_fields(words: np.ndarray, g: np.ndarray, pos: np.ndarray, rule: dict, e: int) -> None:
    """Element ``e``'s actions on the items at ``pos`` (§4 step 2, in its order)."""
    for field, col in (("set_opcode", F.OPCODE), ("set_arg0", F.ARG0), ("set_mod", F.MOD), ("set_arg1", F.ARG1)):
        value = int(rule[field][e])
        if value != KEEP:
            words[g, pos, col] = np.uint32(value & 0xFFFFFFFF)
    scale = int(rule["scale_arg1"][e])
    if scale != KEEP:
        arg1 = words[g, pos, F.ARG1].view(np.int32)
        words[g, pos, F.ARG1] = scale_q16(arg1, scale).view(np.uint32)


def _rewrite(words: np.ndarray, g: np.ndarray, first: np.ndarray, q: np.ndarray, r: int, rule: dict) -> None:
    k = q.shape[1]
    perm = [int(x) for x in rule["perm"][:k]]
    if perm != list(range(k)):  # patterns with runs never reorder, so one item per element
        old = words[g[:, None], q]  # (W, k, ITEM_WORDS) copy
        for e in range(k):
            words[g, q[:, e]] = old[:, perm[e]]
    mark = np.uint32(1 << int(rule["mark"]))
    for e in range(k):
        gi, at = g, first[:, e]
        if int(rule["run"][e]):
            # Every item of a run, first[e] ..= q[e], at once: winners' extents are
            # disjoint, so no item appears twice.
            span = int((q[:, e] - first[:, e]).max(initial=0)) + 1
            if span > 1:
                items = first[:, e, None] + np.arange(span)
                inside = items <= q[:, e, None]
                gi, at = np.broadcast_to(g[:, None], items.shape)[inside], items[inside]
        _set_fields(words, gi, at, rule, e)
        if int(rule["flags"][e]) & FLAG_TARGET:
            words[gi, at, F.MARKS] |= mark


def _merge_head(
    words: np.ndarray,
    g: np.ndarray,
    q: np.ndarray,
    phrase: np.ndarray,
    r: int,
    rule: dict,
    vocab_size: int,
    symbol_rows: np.ndarray,
) -> None:
    """The merged item, written over the span's first item (token and pos stay its own)."""
    span = words[g[:, None], q, F.SPAN].sum(axis=1, dtype=np.uint32)
    marks = np.bitwise_or.reduce(words[g[:, None], q, F.MARKS], axis=1) | np.uint32(1 << int(rule["mark"]))
    first = q[:, 0]
    symbol = (vocab_size + phrase).astype(np.uint32)
    words[g, first, F.SYMBOL] = symbol
    words[g, first, F.SPAN] = span
    words[g, first, F.OPCODE] = int(Op.ACC)
    words[g, first, F.ARG0] = symbol_rows[symbol]
    words[g, first, F.ARG1] = Q16_ONE
    words[g, first, F.MOD] = 0
    words[g, first, F.MARKS] = marks
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


__all__ = ["apply_winners", "scale_q16"]
