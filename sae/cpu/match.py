"""Pattern matching and bid keys on the numpy path (docs/ENGINE.md §2).

One matcher serves every use: all anchors of every document (the bid pass), the
extents of chosen bids, and one chosen anchor per document (locating a rewrite
before applying it). Element tests are evaluated once per view as boolean planes
``(documents, positions)``; matching slides or gathers those planes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sae.algorithm import Algorithm, element_fields
from sae.layout import (
    ANY,
    FLAG_AT_END,
    FLAG_AT_START,
    FLAG_NOT_SYMBOL,
    FLAG_TARGET,
    RULE_GUARD,
    RULE_MERGE,
    Capacities,
    F,
)
from sae.profile import Profiler, maybe_scope

#: One distinct element test: (opcode, mod, position flags, mark bit or -1, symbol-table
#: bit or -1). What a test asks of the symbol alone (symbol, class masks, phrase slot)
#: is tabled per symbol, so a view gathers it once for all tests.
_Test = tuple[int, int, int, int, int]


class StreamView(NamedTuple):
    """Columns of a ``(D, L)`` slice of ProgramItems and its element-test planes."""

    symbol: np.ndarray
    #: int64 ``(D, 1)`` or ``(D, L)``: the last item of the stream holding each position.
    last: np.ndarray
    #: ``tests[j][d, p]``: item p exists and passes the Matcher's element test j.
    tests: tuple[np.ndarray, ...]

    def last_at(self, rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The last item of the stream holding position ``pos`` of row ``rows`` (broadcast together)."""
        return self.last[rows, pos if self.last.shape[1] > 1 else 0]


class _RowPlanes:
    """Test planes of some documents of a view, gathered when first read."""

    def __init__(self, planes: tuple[np.ndarray, ...], rows: np.ndarray) -> None:
        self.planes, self.rows, self.cache = planes, rows, {}

    def __getitem__(self, j: int) -> np.ndarray:
        if j not in self.cache:
            self.cache[j] = self.planes[j][self.rows]
        return self.cache[j]


class Match(NamedTuple):
    ok: np.ndarray  # (D, A) bool
    first: np.ndarray | None  # (D, A, k) int64: first item of each element (None unless asked for)
    q: np.ndarray | None  # (D, A, k) int64: last item of each element
    extent: np.ndarray | None  # (D, A) int64: last item the match examined
    score: np.ndarray | int  # (D, A) int64, or the rule's score when every match scores it


def _rows(plane: np.ndarray) -> np.ndarray:
    """``(D, 1)`` row numbers of a ``(D, L)`` plane, to index it with ``(D, A)`` positions."""
    return np.arange(plane.shape[0])[:, None]


def _gather(plane: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``plane[d, pos[d, a]]``, False where ``pos`` is outside the plane."""
    # Plain fancy indexing: np.take_along_axis and np.clip cost more in argument
    # handling than the gather itself at these sizes, and this runs ~60 times a batch.
    inside = (pos >= 0) & (pos < plane.shape[1])
    return plane[_rows(plane), np.where(inside, pos, 0)] & inside


def _shifted(plane: np.ndarray, shift: int) -> np.ndarray:
    """``plane`` at positions ``arange(L) + shift`` (False past the end): a gather without indices."""
    out = np.zeros_like(plane)
    if shift < plane.shape[1]:
        out[:, : plane.shape[1] - shift] = plane[:, shift:]
    return out


def _plain_rules(records: np.ndarray) -> list[dict[str, int | tuple[int, ...]]]:
    """Compiled rule records (``Algorithm.compile_rules``) as Python ints and tuples, with the
    same field names: the matcher reads them per match and per rewrite, where a numpy
    record field costs ~400 ns and a dictionary entry ~40."""
    return [{name: tuple(int(x) for x in rec[name]) if rec[name].shape else int(rec[name])
             for name in records.dtype.names} for rec in records]


def run_lengths(test: np.ndarray, cap: int) -> np.ndarray:
    """``(D, L)`` int64: how many consecutive items from each position pass ``test``, at most ``cap``."""
    count = test.astype(np.int64)
    alive = test.copy()
    for i in range(1, cap):
        alive &= _shifted(test, i)
        if not alive.any():
            break
        count += alive
    return count


class Matcher:
    """Compiled rules and lexicon of one Algorithm, ready for vectorized matching."""

    def __init__(self, alg: Algorithm, caps: Capacities) -> None:
        self.caps = caps
        self.keys = caps.keys
        self.rules = _plain_rules(alg.compile_rules(caps))
        self.n_rules = len(self.rules)
        self.vocab_size = alg.vocab_size
        self.phrase_bonus = alg.phrase_bonus.astype(np.int64)
        self.kind = np.array([int(r["kind"]) for r in self.rules] or [0], dtype=np.int64)[: self.n_rules]
        #: +1 per rule, -1 for guards: the sign of a bid's score in the potential.
        self.sign = np.where(self.kind == RULE_GUARD, -1, 1).astype(np.int64)
        self.guards = np.flatnonzero(self.kind == RULE_GUARD)
        self.actors = np.flatnonzero(self.kind != RULE_GUARD)  # rules that can win
        # Lexicon keys in a form whose numpy order is the uint32 word order the GPU
        # binary-searches: 15 bits a token packed into uint64 when ids fit (padding
        # 0xFFFFFFFF becomes 0x7FFF, still above every token), else big-endian bytes.
        self._packed = alg.vocab_size < 0x7FFF and caps.phrase <= 4
        self._key_dtype = f"S{4 * caps.phrase}"
        self.lexicon = self._as_bytes(alg.lexicon_keys(caps))
        self.reach = alg.reach
        self._build_tests(alg)
        #: Per rule, ``q[k-1] - p`` when the pattern has neither gaps nor runs (its
        #: elements are then always the anchor and the k - 1 items after it), else -1.
        self.extent = np.array(
            [int(r["length"]) - 1 if not (any(r["gap"]) or any(r["run"])) else -1 for r in self.rules] or [0],
            dtype=np.int64,
        )
        self._tie_cache: dict[int, np.ndarray] = {}
        self._build_footprints(alg)
        #: set through the backend (``engine.profiler``): each rule's matching is then a CPU scope
        self.profiler: Profiler | None = None
        self._match_scopes = [f"match {rule.name}" for rule in alg.rules]

    # -- footprints: what a bid examines and writes (§3, interference) ------------------
    def _build_footprints(self, alg: Algorithm) -> None:
        k_max = self.caps.pattern
        n = max(self.n_rules, 1)
        self.elem_read = np.zeros((n, k_max), dtype=np.uint8)
        self.elem_write = np.zeros((n, k_max), dtype=np.uint8)
        self.elem_mark = np.zeros((n, k_max), dtype=np.uint8)  # mark bit + 1 on target elements, else 0
        for r, rule in enumerate(alg.rules):
            targets = rule.targets()
            for e in range(len(rule.pattern)):
                self.elem_read[r, e], self.elem_write[r, e] = element_fields(rule, e)
                if e in targets:
                    self.elem_mark[r, e] = rule.mark + 1
        #: Footprints over offsets 0..reach of the rules whose elements sit at fixed offsets.
        width = self.reach + 1
        self.static_read = np.zeros((n, width), dtype=np.uint8)
        self.static_write = np.zeros((n, width), dtype=np.uint8)
        self.static_mark = np.zeros((n, width), dtype=np.uint8)
        for r in np.flatnonzero(self.extent[: self.n_rules] >= 0):
            k = int(self.rules[r]["length"])
            self.static_read[r, :k] = self.elem_read[r, :k]
            self.static_write[r, :k] = self.elem_write[r, :k]
            self.static_mark[r, :k] = self.elem_mark[r, :k]

    def footprint(self, first: np.ndarray, last: np.ndarray, anchors: np.ndarray, stream_last: np.ndarray, r: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Extent end and ``(examined, written, mark)`` per offset ``0..reach`` from the anchor
        (``(W, reach + 1)`` uint8) of rule ``r``'s matches whose elements cover
        ``first[:, e] ..= last[:, e]``, at ``anchors`` of streams whose last items are ``stream_last``."""
        width = self.reach + 1
        count = len(anchors)
        read = np.zeros((count, width), dtype=np.uint8)
        write = np.zeros_like(read)
        mark = np.zeros_like(read)
        rule = self.rules[r]
        k = int(rule["length"])
        x = anchors[:, None] + np.arange(width)
        start = anchors[:, None]
        stream_last = stream_last.reshape(-1, 1)
        end = last[:, k - 1].astype(np.int64)
        for e in range(k):
            f, q = first[:, e, None].astype(np.int64), last[:, e, None].astype(np.int64)
            items = (x >= f) & (x <= q)
            examined = (x >= start) & (x <= q)  # the gap's probes and the element's items
            run = int(rule["run"][e])
            if run:
                probe = (q - f + 1 < run) & (q + 1 <= stream_last)  # the item that ended the run
                examined |= (x == q + 1) & probe
                if e == k - 1:
                    end = end + probe[:, 0]
            read |= np.where(examined, self.elem_read[r, e], 0).astype(np.uint8)
            write |= np.where(items, self.elem_write[r, e], 0).astype(np.uint8)
            if self.elem_mark[r, e]:
                mark[items] = self.elem_mark[r, e]
            start = q + 1
        return end, read, write, mark

    # -- element tests ----------------------------------------------------------------
    def _build_tests(self, alg: Algorithm) -> None:
        n_symbols = len(alg.symbol_classes)
        classes = alg.symbol_classes.astype(np.uint32)
        # A merge element also tests its phrase slot (k, e): the symbol is token e of
        # some lexicon phrase of k tokens, which every match needs; most positions fail
        # it and never reach the lexicon search.
        slots: dict[tuple[int, int], np.ndarray] = {}
        for row in alg.phrases:
            k = int((row >= 0).sum())
            for e in range(k):
                slots.setdefault((k, e), np.zeros(n_symbols, dtype=bool))[row[e]] = True
        symbol_tests: list[tuple] = []  # distinct per-symbol tests
        self._tests: list[_Test] = [(ANY, ANY, 0, -1, -1)]  # test 0: the item exists
        self._test_of: list[list[int]] = []
        for rule in self.rules:
            k = int(rule["length"])
            merge = int(rule["kind"]) == RULE_MERGE
            ids = []
            for e in range(k):
                flags = int(rule["flags"][e])
                sym_test = (int(rule["symbol"][e]), bool(flags & FLAG_NOT_SYMBOL), int(rule["any"][e]),
                            int(rule["all"][e]), int(rule["none"][e]), (k, e) if merge else None)
                trivial = sym_test == (ANY, False, 0, 0, 0, None)
                if not trivial and sym_test not in symbol_tests:
                    symbol_tests.append(sym_test)
                test = (int(rule["opcode"][e]), int(rule["mod"][e]), flags & (FLAG_AT_START | FLAG_AT_END),
                        int(rule["mark"]) if flags & FLAG_TARGET else -1,
                        -1 if trivial else symbol_tests.index(sym_test))
                if test not in self._tests:
                    self._tests.append(test)
                ids.append(self._tests.index(test))
            self._test_of.append(ids)
        # Per-symbol tests as bit j % 64 of table j // 64, gathered once per view.
        self._symbol_tables = [np.zeros(n_symbols, dtype=np.uint64) for _ in range(0, len(symbol_tests), 64)]
        every = np.arange(n_symbols)
        for j, (sym, negated, any_, all_, none_, slot) in enumerate(symbol_tests):
            passes = np.ones(n_symbols, dtype=bool)
            if sym != ANY:
                passes &= (every != sym) if negated else (every == sym)
            if any_:
                passes &= (classes & np.uint32(any_)) != 0
            if all_:
                passes &= (classes & np.uint32(all_)) == np.uint32(all_)
            if none_:
                passes &= (classes & np.uint32(none_)) == 0
            if slot is not None:
                passes &= slots.get(slot, np.zeros(n_symbols, dtype=bool))
            self._symbol_tables[j // 64][passes] |= np.uint64(1 << (j % 64))

    def view(
        self, words: np.ndarray, lengths: np.ndarray, offset: np.ndarray | None = None, total: np.ndarray | None = None
    ) -> StreamView:
        """Columns of ``words`` (a ``(D, L, ITEM_WORDS)`` uint32 view, one stream per row) and its
        element tests.

        ``offset`` and ``total`` (per document) say that the rows are a window
        starting at item ``offset`` of a stream of ``total`` items, for the start and
        end anchors; by default each row is a whole stream. (``lengths``: the items of
        each row; every item past them is all-zero words, §1. A window's stream may end
        past the window: its items there do not exist in the view, and a probe of one
        changes no δ, which counts only bids reaching the winner.)
        """
        lengths = lengths.astype(np.int64)[:, None]
        first = np.zeros_like(lengths) if offset is None else -offset.astype(np.int64)[:, None]
        last = first + (lengths if total is None else total.astype(np.int64)[:, None]) - 1
        return self.segment_view(words, first, last, np.arange(words.shape[1]) < lengths)

    def segment_view(self, words: np.ndarray, first: np.ndarray, last: np.ndarray, exists: np.ndarray | None = None
                     ) -> StreamView:
        """Columns and element tests of ``words`` (``(D, L, ITEM_WORDS)`` uint32) whose rows may
        hold several streams end to end (:class:`sae.cpu.rows.Rows`).

        ``first`` and ``last`` (int64, broadcastable to ``(D, L)``) are, per position, the
        row coordinates of the first and last item of the stream holding it: the items
        between them exist (unless ``exists`` says otherwise: a window of a stream).
        """
        symbol = words[..., F.SYMBOL]
        width = words.shape[1]
        pos = np.arange(width)
        if exists is None:
            exists = (pos >= first) & (pos <= last)
        symbol_bits = [table[symbol] for table in self._symbol_tables]
        opcode = mod = marks = None
        at_start = at_end = None
        cache: dict[tuple[str, int], np.ndarray] = {}
        tests = [exists]
        for op, md, where, mark, sym in self._tests[1:]:
            ok = exists.copy()
            if sym >= 0:
                ok &= (symbol_bits[sym // 64] & np.uint64(1 << (sym % 64))) != 0
            if op != ANY:
                if ("op", op) not in cache:
                    opcode = words[..., F.OPCODE] if opcode is None else opcode
                    cache["op", op] = opcode == op
                ok &= cache["op", op]
            if md != ANY:
                if ("mod", md) not in cache:
                    mod = words[..., F.MOD] if mod is None else mod
                    cache["mod", md] = mod == md
                ok &= cache["mod", md]
            if mark >= 0:
                if ("mark", mark) not in cache:
                    marks = words[..., F.MARKS] if marks is None else marks
                    cache["mark", mark] = (marks & np.uint32(1 << mark)) == 0
                ok &= cache["mark", mark]
            if where & FLAG_AT_START:
                if at_start is None:
                    at_start = pos == first
                ok &= at_start
            if where & FLAG_AT_END:
                if at_end is None:
                    at_end = pos == last
                ok &= at_end
            tests.append(ok)
        return StreamView(symbol, last, tuple(tests))

    # -- matching -------------------------------------------------------------------------
    def _runs(self, v: StreamView, test: int, cap: int, memo: dict) -> np.ndarray:
        key = (test, cap)
        if key not in memo:
            memo[key] = run_lengths(v.tests[test], cap)
        return memo[key]

    def match(self, v: StreamView, anchors: np.ndarray, r: int, positions: bool = True, memo: dict | None = None,
              every_position: bool = False, rows: np.ndarray | None = None) -> Match:
        """Match rule ``r`` at ``anchors`` (``(D, A)`` int64 positions; negative = none).

        Elements are placed greedily, left to right, without backtracking (§2).
        ``positions=False`` skips building ``first``, ``q`` and ``extent``.
        ``every_position`` says ``anchors`` is ``arange(L)`` in every row: while the
        elements sit at fixed offsets from the anchor, their tests are then slid
        instead of gathered. ``rows`` matches documents ``rows`` of ``v`` (one per row of
        ``anchors``), gathering only the test planes the rule needs.
        """
        memo = {} if memo is None else memo
        if rows is not None:
            v = StreamView(v.symbol[rows], v.last[rows], _RowPlanes(v.tests, rows))
        rule = self.rules[r]
        k = int(rule["length"])
        tests = self._test_of[r]
        width = v.symbol.shape[1]
        # ``offset``: the last element's last item is ``anchor + offset``, while that holds.
        offset: int | None = 0 if every_position else None

        def test_at(plane: np.ndarray, pos: np.ndarray, shift: int | None) -> np.ndarray:
            return _shifted(plane, shift) if shift is not None else _gather(plane, pos)

        def runs_at(test: int, cap: int, pos: np.ndarray, shift: int | None) -> np.ndarray:
            if rows is not None:  # a few anchors: count each run where it starts
                # the cap items from each anchor in one gather; the run is the passing prefix
                ahead = (pos[..., None] + np.arange(cap)).reshape(pos.shape[0], pos.shape[1] * cap)
                passes = _gather(v.tests[test], ahead).reshape(*pos.shape, cap)
                return np.logical_and.accumulate(passes, axis=-1).sum(axis=-1, dtype=np.int64)
            runs = self._runs(v, test, cap, memo)
            if shift is not None:
                return _shifted(runs, shift)
            return runs[_rows(runs), np.minimum(np.maximum(pos, 0), width - 1)]

        ok = test_at(v.tests[tests[0]], anchors, offset)
        stream_last: np.ndarray | None = None
        firsts, qs = [anchors], []
        run0 = int(rule["run"][0])
        last = anchors
        if run0:
            last = anchors + runs_at(tests[0], run0, anchors, offset) - 1
            offset = None
        qs.append(last)
        for e in range(1, k):
            gap, run = int(rule["gap"][e]), int(rule["run"][e])
            plane = v.tests[tests[e]]
            if gap == 0:
                first = last + 1
                shift = None if offset is None else offset + 1
                ok &= test_at(plane, first, shift)
            else:
                shift = None
                found = np.zeros_like(ok)
                first = np.zeros_like(anchors)
                if stream_last is None:  # a gap stops at the end of its stream, not the row
                    stream_last = v.last_at(_rows(anchors), anchors)
                for g in range(gap + 1):
                    cand = last + 1 + g
                    hit = ~found & _gather(plane, cand) & (cand <= stream_last)
                    first = np.where(hit, cand, first)
                    found |= hit
                ok &= found
            last = first
            offset = shift
            if run:
                last = first + runs_at(tests[e], run, first, shift) - 1
                offset = None
            firsts.append(first)
            qs.append(last)
        score: np.ndarray | int = int(rule["score"])
        if int(rule["kind"]) == RULE_MERGE:
            # Merge patterns have neither gaps nor runs: the anchor and the k - 1 items after it.
            cand = np.nonzero(ok)
            qc = anchors[cand][:, None] + np.arange(k)
            rows = np.broadcast_to(cand[0][:, None], qc.shape)
            idx, found = self.phrase_of(v.symbol[rows, np.minimum(qc, v.symbol.shape[1] - 1)])
            ok[cand] = found
            score = np.full(ok.shape, score, dtype=np.int64)
            if len(self.phrase_bonus):
                score[cand] += np.where(found, self.phrase_bonus[np.where(found, idx, 0)], 0)
        if not positions:
            return Match(ok, None, None, None, score)
        # Column by column into one array: np.stack of broadcast arrays costs several times
        # more in argument handling at these sizes, and this runs ~25 times a batch.
        first = np.empty((*ok.shape, k), dtype=np.result_type(*firsts))
        q = np.empty((*ok.shape, k), dtype=np.result_type(*qs))
        for e in range(k):
            first[..., e] = firsts[e]
            q[..., e] = qs[e]
        extent = q[..., -1].copy()
        run_last = int(rule["run"][k - 1])
        if run_last:
            # A trailing run that stopped early examined the item after it, if one exists.
            stream_last = v.last_at(_rows(anchors), anchors) if stream_last is None else stream_last
            stopped = (q[..., -1] - first[..., -1] + 1 < run_last) & (q[..., -1] + 1 <= stream_last)
            extent += stopped
        return Match(ok, first, q, extent, score)

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

    def _as_bytes(self, keys: np.ndarray) -> np.ndarray:
        """``(..., phrase)`` uint32 keys as one sortable scalar each."""
        if self._packed:
            words = np.minimum(keys, 0x7FFF).astype(np.uint64)
            packed = np.zeros(keys.shape[:-1], dtype=np.uint64)
            for w in range(keys.shape[-1]):
                packed = (packed << np.uint64(15)) | words[..., w]
            return packed
        return np.ascontiguousarray(keys.astype(">u4")).view(self._key_dtype)[..., 0]

    # -- the bid pass ---------------------------------------------------------------------
    def bids(self, v: StreamView, extents: bool = False, placements: dict | None = None
             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Bid keys of every anchor, rule-major ``(rules, D, L)`` uint32 (0 = no bid).

        Rule-major keeps each rule's keys one contiguous plane, so reductions over
        rules are elementwise. With ``extents``, also the last item each bid examined
        (``(rules, D, L)`` int64, -1 where there is no bid). ``placements``, a dict,
        receives for every rule with gaps or runs where its elements landed at every
        anchor: ``(first, last)``, each ``(D, L, k)`` int16, so the loop locates its
        candidates and winners without matching them again.
        """
        d, length = v.symbol.shape
        ties = self._ties(length)
        keys = np.zeros((self.n_rules, d, length), dtype=np.uint32)
        ends = np.full((self.n_rules, d, length), -1, dtype=np.int64) if extents else None
        spans: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # merge candidates
        memo: dict = {}
        # Every element of a match sits on an item that passes its test (§2), so a rule
        # with a test no item of the batch passes bids nowhere: skip its matching, the
        # larger share of a small batch's cost (most texts have no negation).
        passed = [bool(plane.any()) for plane in v.tests]
        for r in range(self.n_rules):
            with maybe_scope(self.profiler, self._match_scopes[r], rule=r, documents=d):
                self._bid_rule(v, r, passed, keys[r], ties[r], ends[r] if extents else None, placements, memo,
                               spans)
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
                keys[r, g, p] = self.keys.pack(score, p, r)
                if extents:
                    ends[r, g, p] = p + self.extent[r]
        return (keys, ends) if extents else keys

    def _bid_rule(self, v: StreamView, r: int, passed: list[bool], keys: np.ndarray, tie: np.ndarray,
                  ends: np.ndarray | None, placements: dict | None, memo: dict, spans: list) -> None:
        """Rule ``r``'s part of :meth:`bids`: its keys (and ends, placements), or for a merge
        its candidate spans, appended to ``spans`` for the one lexicon search."""
        d, length = v.symbol.shape
        rule = self.rules[r]
        if not all(passed[t] for t in self._test_of[r]):
            if placements is not None and self.extent[r] < 0:
                k = int(rule["length"])
                placements[r] = (np.zeros((d, length, k), np.int16), np.zeros((d, length, k), np.int16))
            return
        if self.extent[r] < 0:
            self._bid_matching(v, r, keys, tie, ends, placements, memo)
            return
        ok = self._gap_free_matches(v, r)
        if int(rule["kind"]) != RULE_MERGE:
            np.copyto(keys, (int(rule["score"]) << self.keys.tie_bits) | tie, where=ok, casting="unsafe")
            if ends is not None:
                ends[ok] = np.nonzero(ok)[1] + self.extent[r]  # each match's anchor + its fixed extent
            return
        g, p = np.nonzero(ok)
        spans.append((r, g, p, v.symbol[g[:, None], p[:, None] + np.arange(int(rule["length"]))]))

    def _bid_matching(self, v: StreamView, r: int, keys: np.ndarray, tie: np.ndarray, ends: np.ndarray | None,
                      placements: dict | None, memo: dict) -> None:
        """Bids of a rule with gaps or runs, matched at every anchor, or only where its
        first element matches when that is rare (a negation, an auxiliary)."""
        d, length = keys.shape
        first_test = v.tests[self._test_of[r][0]]
        g, p = np.nonzero(first_test)
        positions = ends is not None or placements is not None
        k = int(self.rules[r]["length"])
        if 4 * g.size < first_test.size:
            m = self.match(v, p[:, None], r, positions=positions, rows=g)
            ok = m.ok[:, 0]
            g, p = g[ok], p[ok]
            score = np.broadcast_to(m.score, m.ok.shape)[ok, 0].astype(np.int64)
            keys[g, p] = ((score << self.keys.tie_bits) | tie[p]).astype(np.uint32)
            if ends is not None:
                ends[g, p] = m.extent[ok, 0]
            if placements is not None:
                first, last = np.zeros((d, length, k), np.int16), np.zeros((d, length, k), np.int16)
                first[g, p], last[g, p] = m.first[ok, 0], m.q[ok, 0]
                placements[r] = (first, last)
            return
        anchors = np.broadcast_to(np.arange(length, dtype=np.int64), (d, length))
        m = self.match(v, anchors, r, positions=positions, memo=memo, every_position=True)
        np.copyto(keys, (m.score << self.keys.tie_bits) | tie, where=m.ok, casting="unsafe")
        if ends is not None:
            ends[m.ok] = m.extent[m.ok]
        if placements is not None:
            placements[r] = (m.first.astype(np.int16), m.q.astype(np.int16))

    def _ties(self, length: int) -> np.ndarray:
        """``(rules, length)`` uint32: the key bits below the score, per rule and anchor (cached)."""
        cached = self._tie_cache.get(length)
        if cached is None:
            anchors = np.arange(length, dtype=np.int64)
            cached = self.keys.pack(np.zeros((self.n_rules, 1), np.int64), anchors[None, :],
                                    np.arange(self.n_rules)[:, None])
            self._tie_cache[length] = cached
        return cached

    def _gap_free_matches(self, v: StreamView, r: int) -> np.ndarray:
        """Where rule ``r`` (no gaps, no runs) matches structurally, at every anchor ``(D, L)`` bool.

        Element ``e`` looks at the item ``e`` places right of the anchor, so its test
        is slid left by ``e``. For a merge the caller still searches the lexicon.
        """
        tests = self._test_of[r]
        ok = v.tests[tests[0]].copy()
        length = ok.shape[1]
        for e in range(1, len(tests)):
            if e >= length:
                ok[:] = False
                break
            ok[:, : length - e] &= v.tests[tests[e]][:, e:]
            ok[:, length - e :] = False
        return ok

    def potential_at(self, keys: np.ndarray) -> np.ndarray:
        """``(D, L)`` int64 signed score sums over rules of rule-major keys at each anchor
        (guards count negatively); a document's potential is their sum over its anchors."""
        scores = keys >> np.uint32(self.keys.tie_bits)
        at = np.add.reduce(scores[self.actors], axis=0, dtype=np.int64)
        if self.guards.size:
            at -= np.add.reduce(scores[self.guards], axis=0, dtype=np.int64)
        return at


__all__ = ["Match", "Matcher", "StreamView", "run_lengths"]
