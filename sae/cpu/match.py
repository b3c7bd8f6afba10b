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
    fired: np.ndarray
    lengths: np.ndarray  # (D, 1) int64
    #: ``tests[j][d, p]``: item p exists and passes the Matcher's element test j.
    tests: tuple[np.ndarray, ...]
    #: Some item has a fired bit (a fresh stream has none, so no rule needs to look).
    fired_any: bool

    def rows(self, g: np.ndarray) -> StreamView:
        """The view of documents ``g`` (repeats allowed)."""
        tests = tuple(t[g] for t in self.tests)
        return StreamView(self.symbol[g], self.fired[g], self.lengths[g], tests, self.fired_any)


class Match(NamedTuple):
    ok: np.ndarray  # (D, A) bool
    q: np.ndarray | None  # (D, A, k) int64 matched positions (None unless asked for)
    score: np.ndarray | int  # (D, A) int64, or the rule's score when every match scores it


def _gather(col: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return np.take_along_axis(col, np.clip(pos, 0, col.shape[1] - 1), axis=1)


def _shifted(col: np.ndarray, shift: int) -> np.ndarray:
    """``col`` at positions ``arange(L) + shift`` (zeros past the end): a gather without indices."""
    out = np.zeros_like(col)
    if shift < col.shape[1]:
        out[:, : col.shape[1] - shift] = col[:, shift:]
    return out


class Matcher:
    """Compiled rules and lexicon of one Algorithm, ready for vectorized matching."""

    def __init__(self, alg: Algorithm, caps: Capacities) -> None:
        self.caps = caps
        self.rules = alg.compile_rules(caps)
        self.n_rules = len(self.rules)
        self.vocab_size = alg.vocab_size
        self.phrase_bonus = alg.phrase_bonus.astype(np.int64)
        # Lexicon keys in a form whose numpy order is the uint32 word order the GPU
        # binary-searches: 15 bits a token packed into uint64 when ids fit (padding
        # 0xFFFFFFFF becomes 0x7FFF, still above every token), else big-endian bytes.
        self._packed = alg.vocab_size < 0x7FFF and caps.phrase <= 4
        self._key_dtype = f"S{4 * caps.phrase}"
        self.lexicon = self._as_bytes(alg.lexicon_keys(caps))
        self.reach = alg.reach
        # The distinct tests of all pattern elements, each evaluated once per view:
        # (opcode, symbol, classes, phrase slot). Test 0 is "the item exists". A merge
        # element also tests its phrase slot (k, e): the symbol is token e of some
        # lexicon phrase of k tokens, which every match needs; most positions fail it
        # and never reach the lexicon search.
        slots: dict[tuple[int, int], np.ndarray] = {}
        for row in alg.phrases:
            k = int((row >= 0).sum())
            for e in range(k):
                slots.setdefault((k, e), np.zeros(len(alg.symbol_classes), dtype=bool))[row[e]] = True
        self._tests: list[tuple[int, int, int, tuple[int, int] | None]] = [(ANY, ANY, 0, None)]
        self._test_of: list[list[int]] = []
        for rule in self.rules:
            tests = []
            k = int(rule["length"])
            for e in range(k):
                slot = (k, e) if rule["kind"] == RULE_MERGE else None
                test = (int(rule["opcode"][e]), int(rule["symbol"][e]), int(rule["classes"][e]), slot)
                if test not in self._tests:
                    self._tests.append(test)
                tests.append(self._tests.index(test))
            self._test_of.append(tests)
        # What a test asks of the symbol alone (symbol, classes, phrase slot) is
        # tabled per symbol, bit j % 64 of table j // 64, so a view gathers it once.
        n_symbols = len(alg.symbol_classes)
        self._symbol_passes = [np.zeros(n_symbols, dtype=np.uint64) for _ in range(0, len(self._tests), 64)]
        for j, (_, sym, cls, slot) in enumerate(self._tests):
            passes = np.ones(n_symbols, dtype=bool)
            if sym != ANY:
                passes &= np.arange(n_symbols) == sym
            if cls != 0:
                passes &= (alg.symbol_classes & cls) != 0
            if slot is not None:
                passes &= slots.get(slot, np.zeros(n_symbols, dtype=bool))
            self._symbol_passes[j // 64][passes] |= np.uint64(1 << (j % 64))
        #: Per rule, ``q[k-1] - p`` when the pattern has no gaps (its span is then always
        #: the anchor and the k - 1 items after it), else -1 (found by matching).
        self.extent = np.array(
            [int(r["length"]) - 1 if not r["gap"][: r["length"]].any() else -1 for r in self.rules] or [0],
            dtype=np.int64,
        )

    def _as_bytes(self, keys: np.ndarray) -> np.ndarray:
        """``(..., phrase)`` uint32 keys as one sortable scalar each."""
        if self._packed:
            words = np.minimum(keys, 0x7FFF).astype(np.uint64)
            packed = np.zeros(keys.shape[:-1], dtype=np.uint64)
            for w in range(keys.shape[-1]):
                packed = (packed << np.uint64(15)) | words[..., w]
            return packed
        return np.ascontiguousarray(keys.astype(">u4")).view(self._key_dtype)[..., 0]

    def view(self, words: np.ndarray, lengths: np.ndarray) -> StreamView:
        """Columns of ``words`` (a ``(D, L, ITEM_WORDS)`` uint32 view) and its element tests."""
        symbol, opcode = words[..., F.SYMBOL], words[..., F.OPCODE]
        lengths = lengths.astype(np.int64)[:, None]
        exists = np.arange(words.shape[1]) < lengths
        passes = [table[symbol] for table in self._symbol_passes]
        same_op: dict[int, np.ndarray] = {}
        tests = [exists]
        for j, (op, sym, cls, slot) in enumerate(self._tests[1:], start=1):
            ok = exists.copy()
            if sym != ANY or cls != 0 or slot is not None:
                ok &= (passes[j // 64] & np.uint64(1 << (j % 64))) != 0
            if op != ANY:
                if op not in same_op:
                    same_op[op] = opcode == op
                ok &= same_op[op]
            tests.append(ok)
        fired = words[..., F.FIRED]
        return StreamView(symbol, fired, lengths, tuple(tests), bool(fired.any()))

    def _element(self, v: StreamView, pos: np.ndarray, shift: int | None, r: int, e: int) -> np.ndarray:
        """Does element ``e`` of rule ``r`` match the items at ``pos``? (a new array)

        ``shift`` is set when ``pos`` is every position of the stream plus a constant,
        so the test can be shifted instead of gathered.
        """
        test = v.tests[self._test_of[r][e]]
        if shift == 0:
            return test.copy()
        if shift is not None:
            return _shifted(test, shift)
        return _gather(test, pos) & (pos >= 0) & (pos < test.shape[1])

    def match(
        self, v: StreamView, anchors: np.ndarray, r: int, every_position: bool = False, positions: bool = True
    ) -> Match:
        """Match rule ``r`` at ``anchors`` (``(D, A)`` int64 positions; negative = none).

        ``every_position`` says that ``anchors`` is ``arange(L)`` for every document.
        ``positions=False`` skips building ``q`` (the bid pass needs only ``ok`` and
        ``score``); ``q`` is then None.
        """
        rule = self.rules[r]
        k = int(rule["length"])
        shift: int | None = 0 if every_position else None
        ok = self._element(v, anchors, shift, r, 0)
        fired = v.fired if every_position else _gather(v.fired, anchors)
        ok &= ((fired >> np.uint32(r)) & 1) == 0
        qs = [anchors]
        prev = anchors
        for e in range(1, k):
            gap = int(rule["gap"][e])
            if gap == 0:
                shift = None if shift is None else shift + 1
                prev = prev + 1
                ok &= self._element(v, prev, shift, r, e)
            else:
                shift = None  # the position now differs per anchor
                found = np.zeros_like(ok)
                nxt = np.zeros_like(anchors)
                for g in range(gap + 1):
                    cand = prev + 1 + g
                    hit = ~found & self._element(v, cand, None, r, e)
                    nxt = np.where(hit, cand, nxt)
                    found |= hit
                ok &= found
                prev = nxt
            qs.append(prev)
        q = np.stack(np.broadcast_arrays(*qs), axis=-1) if positions else None
        score: np.ndarray | int = int(rule["score"])
        if rule["kind"] == RULE_MERGE:
            # Merge patterns have no gaps: the span is the anchor and the k - 1 items after it.
            cand = np.nonzero(ok)
            qc = anchors[cand][:, None] + np.arange(k)  # (C, k)
            rows = np.broadcast_to(cand[0][:, None], qc.shape)
            idx, found = self.phrase_of(v.symbol[rows, np.minimum(qc, v.symbol.shape[1] - 1)])
            ok[cand] = found
            score = np.full(ok.shape, score, dtype=np.int64)
            if len(self.phrase_bonus):
                score[cand] += np.where(found, self.phrase_bonus[np.where(found, idx, 0)], 0)
        if positions:
            score = np.broadcast_to(score, ok.shape)
        return Match(ok, q, score)

    def phrase_of(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lexicon index of each row of ``(C, k)`` symbols (ANY-padded past the span), and whether it is a phrase."""
        keys = np.full((len(symbols), self.caps.phrase), ANY, dtype=np.uint32)
        keys[:, : symbols.shape[1]] = symbols
        idx, found = self.lookup(self._as_bytes(keys))
        found &= ((symbols < self.vocab_size) | (symbols == ANY)).all(axis=-1)
        return idx, found

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Binary search of byte keys in the lexicon: (index, found)."""
        n = len(self.lexicon)
        if n == 0:
            return np.zeros(keys.shape, np.int64), np.zeros(keys.shape, bool)
        idx = np.searchsorted(self.lexicon, keys)
        found = (idx < n) & (self.lexicon[np.minimum(idx, n - 1)] == keys)
        return idx.astype(np.int64), found

    def bids(self, v: StreamView) -> np.ndarray:
        """Bid keys of every anchor, rule-major ``(rules, D, L)`` uint32 (0 = no bid).

        A key is ``(score << 16) | (0xFFFF - (p << 5 | r))``. Rule-major keeps each
        rule's keys one contiguous plane, so reductions over rules are elementwise.
        """
        d, length = v.symbol.shape
        anchors = np.arange(length, dtype=np.int64)
        keys = np.zeros((self.n_rules, d, length), dtype=np.uint32)
        spans: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # merge candidates
        for r in range(self.n_rules):
            rule = self.rules[r]
            tie = 0xFFFF - ((anchors << 5) | r)
            if self.extent[r] < 0:
                m = self.match(v, np.broadcast_to(anchors, (d, length)), r, every_position=True, positions=False)
                np.copyto(keys[r], (m.score << 16) | tie, where=m.ok, casting="unsafe")
                continue
            ok = self._gap_free_matches(v, r)
            if rule["kind"] != RULE_MERGE:
                np.copyto(keys[r], (int(rule["score"]) << 16) | tie, where=ok, casting="unsafe")
                continue
            g, p = np.nonzero(ok)
            spans.append((r, g, p, v.symbol[g[:, None], p[:, None] + np.arange(int(rule["length"]))]))
        if spans:
            # A merge bids only where its span is a phrase: one lexicon search for
            # the few candidates of every merge rule, each span padded with ANY.
            symbols = np.full((sum(len(s[1]) for s in spans), self.caps.phrase), ANY, dtype=np.uint32)
            at = np.cumsum([0] + [len(s[1]) for s in spans])
            for (_, _, _, sym), start in zip(spans, at):
                symbols[start : start + len(sym), : sym.shape[1]] = sym
            idx_all, found_all = self.phrase_of(symbols)
            for (r, g, p, _), start, end in zip(spans, at, at[1:]):
                found, idx = found_all[start:end], idx_all[start:end]
                g, p, idx = g[found], p[found], idx[found]
                score = int(self.rules[r]["score"]) + (self.phrase_bonus[idx] if len(self.phrase_bonus) else 0)
                keys[r, g, p] = (score << 16) | (0xFFFF - ((p << 5) | r))
        return keys

    def _gap_free_matches(self, v: StreamView, r: int) -> np.ndarray:
        """Where rule ``r`` (no gaps) matches structurally, at every anchor ``(D, L)`` bool.

        Element ``e`` looks at the item ``e`` places right of the anchor, so its test
        is slid left by ``e``. For a merge the caller still searches the lexicon.
        """
        rule = self.rules[r]
        k = int(rule["length"])
        tests = self._test_of[r]
        ok = v.tests[tests[0]].copy()
        if v.fired_any:
            ok &= (v.fired & np.uint32(1 << r)) == 0
        length = ok.shape[1]
        for e in range(1, k):
            if e >= length:
                ok[:] = False
                break
            ok[:, : length - e] &= v.tests[tests[e]][:, e:]
            ok[:, length - e :] = False
        return ok


def decode_key(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, anchor, rule) of packed bid keys."""
    key = key.astype(np.int64)
    low = 0xFFFF - (key & 0xFFFF)
    return key >> 16, low >> 5, low & 31
