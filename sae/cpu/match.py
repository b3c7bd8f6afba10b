"""Pattern matching and bid keys on the numpy path (docs/ENGINE.md §2).

One matcher serves both uses: all anchors of every document (the bid pass) and
one chosen anchor per document (locating a rewrite before applying it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sae.algorithm import Algorithm
from sae.layout import ANY, F, RULE_MERGE, Capacities


class StreamView(NamedTuple):
    """Columns of a ``(D, L)`` slice of ProgramItems, gathered once per bid pass."""

    symbol: np.ndarray
    opcode: np.ndarray
    fired: np.ndarray
    classes: np.ndarray
    lengths: np.ndarray  # (D, 1) int64


class Match(NamedTuple):
    ok: np.ndarray  # (D, A) bool
    q: np.ndarray  # (D, A, k) int64 matched positions
    score: np.ndarray  # (D, A) int64
    phrase: np.ndarray  # (D, A) int64 lexicon index (merge rules), else -1


def _gather(col: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return np.take_along_axis(col, np.minimum(pos, col.shape[1] - 1), axis=1)


class Matcher:
    """Compiled rules and lexicon of one Algorithm, ready for vectorized matching."""

    def __init__(self, alg: Algorithm, caps: Capacities) -> None:
        self.caps = caps
        self.rules = alg.compile_rules(caps)
        self.n_rules = len(self.rules)
        self.vocab_size = alg.vocab_size
        self.symbol_classes = alg.symbol_classes
        self.phrase_bonus = alg.phrase_bonus.astype(np.int64)
        # Lexicon keys as big-endian byte strings: bytewise order == uint32 word order,
        # so np.searchsorted is the binary search the GPU does word by word.
        self._key_dtype = f"S{4 * caps.phrase}"
        self.lexicon = self._as_bytes(alg.lexicon_keys(caps))

    def _as_bytes(self, keys: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(keys.astype(">u4")).view(self._key_dtype)[..., 0]

    def view(self, words: np.ndarray, lengths: np.ndarray) -> StreamView:
        """Columns of ``words`` (a ``(D, L, ITEM_WORDS)`` uint32 view)."""
        symbol = words[..., F.SYMBOL]
        return StreamView(
            symbol=symbol,
            opcode=words[..., F.OPCODE],
            fired=words[..., F.FIRED],
            classes=self.symbol_classes[symbol],
            lengths=lengths.astype(np.int64)[:, None],
        )

    def _element(self, v: StreamView, pos: np.ndarray, r: int, e: int) -> np.ndarray:
        rule = self.rules[r]
        ok = pos < v.lengths
        if rule["opcode"][e] != ANY:
            ok &= _gather(v.opcode, pos) == rule["opcode"][e]
        if rule["symbol"][e] != ANY:
            ok &= _gather(v.symbol, pos) == rule["symbol"][e]
        if rule["classes"][e] != 0:
            ok &= (_gather(v.classes, pos) & rule["classes"][e]) != 0
        return ok

    def match(self, v: StreamView, anchors: np.ndarray, r: int) -> Match:
        """Match rule ``r`` at ``anchors`` (``(D, A)`` int64 positions)."""
        rule = self.rules[r]
        k = int(rule["length"])
        ok = self._element(v, anchors, r, 0)
        ok &= ((_gather(v.fired, anchors) >> np.uint32(r)) & 1) == 0
        qs = [anchors]
        prev = anchors
        for e in range(1, k):
            found = np.zeros_like(ok)
            nxt = np.zeros_like(anchors)
            for g in range(int(rule["gap"][e]) + 1):
                cand = prev + 1 + g
                hit = ~found & self._element(v, cand, r, e)
                nxt = np.where(hit, cand, nxt)
                found |= hit
            ok &= found
            prev = nxt
            qs.append(nxt)
        q = np.stack(qs, axis=-1)
        score = np.full(ok.shape, int(rule["score"]), dtype=np.int64)
        phrase = np.full(ok.shape, -1, dtype=np.int64)
        if rule["kind"] == RULE_MERGE:
            symbols = np.stack([_gather(v.symbol, q[..., e]) for e in range(k)], axis=-1)
            ok &= (symbols < self.vocab_size).all(axis=-1)
            keys = np.full((*ok.shape, self.caps.phrase), ANY, dtype=np.uint32)
            keys[..., :k] = symbols
            found_idx, found = self.lookup(self._as_bytes(keys))
            ok &= found
            phrase = np.where(ok, found_idx, -1)
            if len(self.phrase_bonus):
                score += np.where(ok, self.phrase_bonus[np.where(ok, found_idx, 0)], 0)
        return Match(ok, q, score, phrase)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Binary search of byte keys in the lexicon: (index, found)."""
        n = len(self.lexicon)
        if n == 0:
            return np.zeros(keys.shape, np.int64), np.zeros(keys.shape, bool)
        idx = np.searchsorted(self.lexicon, keys)
        found = (idx < n) & (self.lexicon[np.minimum(idx, n - 1)] == keys)
        return idx.astype(np.int64), found

    def bids(self, v: StreamView) -> np.ndarray:
        """Bid keys ``(D, L, rules)`` uint32: ``(score << 16) | (0xFFFF - (p << 5 | r))``."""
        d, length = v.symbol.shape
        keys = np.zeros((d, length, self.n_rules), dtype=np.uint32)
        anchors = np.broadcast_to(np.arange(length, dtype=np.int64), (d, length))
        for r in range(self.n_rules):
            m = self.match(v, anchors, r)
            tie = 0xFFFF - ((anchors << 5) | r)
            keys[:, :, r] = np.where(m.ok, (m.score << 16) | tie, 0)
        return keys


def potential(keys: np.ndarray) -> np.ndarray:
    """Sum of the scores of all bids per document (int64; fits int32 by construction)."""
    return (keys >> np.uint32(16)).astype(np.int64).sum(axis=(1, 2))


def decode_key(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, anchor, rule) of packed bid keys."""
    key = key.astype(np.int64)
    low = 0xFFFF - (key & 0xFFFF)
    return key >> 16, low >> 5, low & 31
