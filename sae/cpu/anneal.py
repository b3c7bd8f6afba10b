"""The annealing loop on the numpy path (docs/ENGINE.md §3), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm
from sae.backend import step_limit
from sae.batch import ProgramBatch
from sae.cpu.match import Matcher, StreamView
from sae.cpu.rewrite import apply_winners
from sae.cpu.rows import PACK_WHEN, Rows
from sae.layout import COMMITTED, ITEM_WORDS, JOURNAL_WORDS, REVERTED, RULE_MERGE, item_words
from sae.profile import maybe_scope


def select_winners(
    g: np.ndarray, p: np.ndarray, key: np.ndarray, last: np.ndarray, read: np.ndarray, write: np.ndarray,
    mark: np.ndarray,
) -> np.ndarray:
    """Which candidates beat every other candidate they interfere with (§3 step 3).

    Candidate ``i`` is anchored at ``p[i]`` of document ``g[i]`` (sorted by document,
    then anchor, at most one per anchor), has key ``key[i]`` and examines items up
    to ``last[i]``; ``read``, ``write`` and ``mark`` (``(C, reach + 1)``) are its
    footprint: the fields it examines and writes, and the mark bit + 1 it sets, on
    item ``p + j``. Only candidates whose extents overlap can interfere: candidate
    ``a`` is compared with the candidates of its document anchored in ``(p[a], last[a]]``.
    """
    count, width = len(g), read.shape[1]
    win = np.ones(count, dtype=bool)
    if count < 2:
        return win
    span = int(p.max()) + width + 1
    place = g * span + p  # ascending: candidates are sorted by document, then anchor
    stop = np.searchsorted(place, g * span + last, side="right")  # past a's extent
    counts = stop - np.arange(1, count + 1)
    total = int(counts.sum())
    if total == 0:
        return win
    a = np.repeat(np.arange(count), counts)
    b = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + a + 1
    # Item p[b] + i is A's offset o + i and B's offset i.
    o = (p[b] - p[a])[:, None]
    cols = o + np.arange(width)
    shared = cols < width
    ia = np.minimum(cols, width - 1)
    wa = np.take_along_axis(write[a], ia, axis=1) * shared
    ra = np.take_along_axis(read[a], ia, axis=1) * shared
    ma = np.take_along_axis(mark[a], ia, axis=1) * shared
    wb, rb, mb = write[b], read[b], mark[b]
    clash = ((wa & (rb | wb)) | (wb & ra)).any(axis=1) | ((ma == mb) & (ma > 0)).any(axis=1)
    win[a[clash & (key[b] > key[a])]] = False
    win[b[clash & (key[a] > key[b])]] = False
    return win


class Annealer:
    """Runs the loop of one Algorithm over a batch of documents at once."""

    def __init__(self, alg: Algorithm, matcher: Matcher) -> None:
        self.alg, self.m = alg, matcher
        self.params = alg.params
        self.symbol_rows = alg.symbol_rows.astype(np.uint32)
        self._merge = np.array([int(r["kind"]) == RULE_MERGE for r in matcher.rules] or [False])
        self._all_act = matcher.actors.size == matcher.n_rules  # no guards: keys need no selection
        self._footprint_scopes = [f"footprint {rule.name}" for rule in alg.rules]
        self.packing = PACK_WHEN  #: see :meth:`Rows.of`; the results are the same bytes either way

    def run(self, batch: ProgramBatch, max_steps: int | None = None) -> None:
        """Anneal every document of ``batch`` in place, filling its journal (for at most
        ``max_steps`` steps, when given: ``Backend.anneal``)."""
        m = self.m
        n, length = batch.n, batch.max_length()
        steps = step_limit(self.params.max_steps, max_steps)
        if n == 0 or length == 0 or m.actors.size == 0 or steps == 0:
            return
        rows = Rows.of(batch, self.packing)
        view = m.segment_view(rows.words, *rows.bounds())  # kept current: rewritten rows are replaced
        place: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # where gap and run rules' elements land
        keys = m.bids(view, placements=place)
        potential = rows.doc_sums(m.potential_at(keys))  # per document, kept current with the keys
        inhibit = np.zeros((n, m.n_rules), dtype=np.uint32)  # per document
        live = np.arange(rows.count)  # rows with a document not finished yet
        for step in range(steps):
            actors = keys if self._all_act else keys[m.actors]
            top = actors[:, live].max(axis=0)  # the best rewrite or merge key at each anchor
            has_bid = top.any(axis=1)
            live, top = live[has_bid], top[has_bid]
            if live.size == 0:
                break
            batch.stats.steps = step + 1
            self._step(batch, rows, view, place, keys, potential, inhibit, live, top, step)
        rows.unpack(batch)

    def _step(
        self,
        batch: ProgramBatch,
        rows: Rows,
        view: StreamView,
        place: dict[int, tuple[np.ndarray, np.ndarray]],
        keys: np.ndarray,
        potential: np.ndarray,
        inhibit: np.ndarray,
        live: np.ndarray,
        top: np.ndarray,
        step: int,
    ) -> None:
        """One step of §3 for the ``live`` rows; ``view``, ``keys`` and ``potential`` are kept current.

        A document without a bid in a live row has no candidate: it is finished as it
        would be alone, and its inhibition no longer matters.
        """
        m = self.m
        cand = top
        live_docs = rows.docs_in(live)
        held = inhibit[live_docs]
        if held.any():
            actors = keys if self._all_act else keys[m.actors]
            eligible = (inhibit[rows.doc_at[live]] == 0).transpose(2, 0, 1)[m.actors]  # (actors, rows, width)
            cand = np.where(eligible, actors[:, live], 0).max(axis=0)
            inhibit[live_docs] -= held > 0
        g, p = np.nonzero(cand)  # the candidates, by row then anchor (so by document then anchor)
        key = cand[g, p]
        score, _, rule = m.keys.unpack(key)
        row = live[g]
        last, read, write, mark = self._footprints(view, place, row, p, rule)
        win = select_winners(g, p, key, last, read, write, mark)
        row, p, key, last, score, rule = row[win], p[win], key[win], last[win], score[win], rule[win]
        docs = rows.doc_at[row, p]
        # Ranks by anchor within each document; winners past the journal's room are dropped.
        first = np.searchsorted(docs, docs)
        rank = np.arange(len(docs)) - first
        keep = rank < (batch.caps.journal - batch.journal_len[docs].astype(np.int64))
        if not keep.all():
            docs, row, p, key, last, score, rule, rank = (
                a[keep] for a in (docs, row, p, key, last, score, rule, rank))
        if docs.size == 0:
            return
        p0 = potential[docs]
        if m.guards.size:
            delta = self._judge(rows, keys, docs, row, p, last, key, rule)
        else:
            delta = np.zeros(len(docs), dtype=np.int64)  # no guards: the check is not run (§3 step 5)
        commit = delta <= score + self.params.tolerance
        batch.stats.committed += int(commit.sum())
        batch.stats.reverted += int(commit.size - commit.sum())
        self._journal(batch, docs, rank, step, rule, p - rows.start[docs], score, p0, p0 - delta, commit)
        inhibit[docs[~commit], rule[~commit]] = self.params.inhibit_steps
        # Apply the committed winners at once and bid again where something changed.
        if not commit.any():
            return
        # Rewritten in place, the whole batch at once: a copy of the changed rows in
        # and out cost more than finding the winners among every row.
        winners = np.zeros((rows.count, rows.width), dtype=np.uint32)
        winners[row[commit], p[commit]] = key[commit]
        used = np.full(rows.count, rows.width, dtype=np.int64)  # closed up by merges; ``rows`` keeps the lengths
        dead = apply_winners(m, rows.words, used, winners, self.symbol_rows, located=place)
        if dead is not None:
            rows.removed(dead)
        redo = np.unique(row[commit])
        fresh = m.segment_view(rows.words[redo], *rows.bounds(redo))
        new_place: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        new_keys = m.bids(fresh, placements=new_place)
        keys[:, redo] = new_keys
        for r, (first, last) in new_place.items():
            place[r][0][redo], place[r][1][redo] = first, last
        potential[rows.docs_in(redo)] = rows.doc_sums(m.potential_at(new_keys), redo)
        view.last[redo] = fresh.last  # merges moved stream ends (view.symbol is a view of the words: current)
        for plane, new in zip(view.tests, fresh.tests):
            plane[redo] = new

    def _footprints(self, view: StreamView, place: dict, row: np.ndarray, p: np.ndarray, rule: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Extent end and footprint (see :func:`select_winners`) of candidates of ``rule`` at ``(row, p)``."""
        m = self.m
        last = p + m.extent[rule]
        read, write, mark = m.static_read[rule], m.static_write[rule], m.static_mark[rule]
        for r in np.flatnonzero(m.extent < 0):
            sel = np.flatnonzero(rule == r)
            if sel.size:
                with maybe_scope(m.profiler, self._footprint_scopes[r], rule=int(r), candidates=int(sel.size)):
                    first, q = place[r][0][row[sel], p[sel]], place[r][1][row[sel], p[sel]]
                    last[sel], read[sel], write[sel], mark[sel] = m.footprint(
                        first, q, p[sel], view.last_at(row[sel], p[sel]), int(r))
        return last, read, write, mark

    def _judge(
        self,
        rows: Rows,
        keys: np.ndarray,
        docs: np.ndarray,
        row: np.ndarray,
        p: np.ndarray,
        z: np.ndarray,
        key: np.ndarray,
        rule: np.ndarray,
    ) -> np.ndarray:
        """δ of every winner (§3 step 5): guards of S it touches minus all bids of S_w touching it.

        Winner ``i`` of document ``docs[i]`` is anchored at ``p[i]`` of ``row[i]`` with
        extent end ``z[i]``. S_w is built per winner as a window of its document: the
        items any bid touching the winner can examine, ``[p - reach, z + reach]``.
        """
        m, reach, words = self.m, self.m.reach, rows.words
        begin, n = rows.start[docs], rows.length[docs]
        low = np.maximum(p - reach, begin)  # the window's first item, in row coordinates
        # Guards of S touching the winner: anchored in [p - reach, z], extent reaching p.
        guard_sum = np.zeros(len(docs), dtype=np.int64)
        row_set, where = np.unique(row, return_inverse=True)
        view = m.segment_view(words[row_set], *rows.bounds(row_set))
        anchors = np.arange(words.shape[1], dtype=np.int64)
        for r in m.guards:
            found = m.match(view, np.broadcast_to(anchors, (len(row_set), len(anchors))), int(r))
            ok, ends = found.ok[where], found.extent[where]
            score = np.broadcast_to(found.score, found.ok.shape)[where]
            at = anchors[None, :]
            touch = ok & (at >= low[:, None]) & (at <= z[:, None]) & (ends >= p[:, None])
            guard_sum -= (np.where(touch, score, 0)).sum(axis=1)
        # S_w: each winner applied alone to a window of its document.
        a = low
        b = np.minimum(z + reach, begin + n - 1)
        width = int((b - a).max()) + 1
        idx = a[:, None] + np.arange(width)
        inside = idx <= b[:, None]
        mini = np.where(inside[..., None], words[row[:, None], np.minimum(idx, words.shape[1] - 1)], 0)
        mini = np.ascontiguousarray(mini, dtype=np.uint32).reshape(len(docs), width, ITEM_WORDS)
        mini_len = (b - a + 1).astype(np.uint32)
        local = np.zeros((len(docs), width), dtype=np.uint32)
        local[np.arange(len(docs)), p - a] = m.keys.pack(m.keys.score(key), p - a, rule)
        offset = a - begin  # the window's first item in its document
        apply_winners(m, mini, mini_len, local, self.symbol_rows, offset=offset, total=n)
        removed = np.where(self._merge[rule], (b - a + 1) - mini_len.astype(np.int64), 0)
        new_keys, new_ends = m.bids(m.view(mini, mini_len, offset=offset, total=n - removed), extents=True)
        lo, hi = p - a, z - removed - a  # the winner's extent in window coordinates
        at = np.arange(width)[None, :]
        new_sum = np.zeros(len(docs), dtype=np.int64)
        scores = (new_keys >> np.uint32(m.keys.tie_bits)).astype(np.int64)
        for r in range(m.n_rules):
            touch = (new_keys[r] > 0) & (at <= hi[:, None]) & (new_ends[r] >= lo[:, None])
            new_sum += m.sign[r] * np.where(touch, scores[r], 0).sum(axis=1)
        return guard_sum - new_sum

    @staticmethod
    def _journal(
        batch: ProgramBatch,
        docs: np.ndarray,
        rank: np.ndarray,
        step: int,
        rule: np.ndarray,
        pos: np.ndarray,
        score: np.ndarray,
        before: np.ndarray,
        after: np.ndarray,
        commit: np.ndarray,
    ) -> None:
        """One entry per attempted winner, in rank order (``docs`` may repeat)."""
        slot = batch.journal_len[docs] + rank
        values = {"step": step, "rank": rank, "rule": rule, "pos": pos, "score": score, "potential_before": before,
                  "potential_after": after, "outcome": np.where(commit, COMMITTED, REVERTED)}
        # Every field is one 4-byte word (sae.layout): write the entries as rows of words.
        entries = np.empty((len(docs), JOURNAL_WORDS), dtype=np.uint32)
        for word, name in enumerate(batch.journal.dtype.names):
            entries[:, word] = np.asarray(values[name]).astype(np.int64) & 0xFFFFFFFF  # i32 as its bits
        batch.journal.view(np.uint32).reshape(*batch.journal.shape, JOURNAL_WORDS)[docs, slot] = entries
        batch.journal_len += np.bincount(docs, minlength=len(batch.journal_len)).astype(batch.journal_len.dtype)


def replay(annealer: Annealer, initial: np.ndarray, journal: np.ndarray) -> np.ndarray:
    """Re-apply the committed entries of one document's journal to its initial program.

    ``initial`` holds the document's ProgramItems (its length = ``len(initial)``).
    Entries are applied one at a time, each step's from right to left, so no merge
    moves an anchor still to come (docs/ENGINE.md §3). Returns the resulting items:
    they equal the annealed program exactly when applying a step's winners together
    equals applying them one by one.
    """
    m = annealer.m
    words = item_words(initial.copy())[None]
    lengths = np.array([len(initial)], dtype=np.uint32)
    done = journal[journal["outcome"] == COMMITTED]
    for entry in done[np.lexsort((-done["pos"].astype(np.int64), done["step"]))]:
        winners = np.zeros((1, words.shape[1]), dtype=np.uint32)
        pos, rule = int(entry["pos"]), int(entry["rule"])
        winners[0, pos] = m.keys.pack(int(entry["score"]), pos, rule)
        apply_winners(m, words, lengths, winners, annealer.symbol_rows)
    return words[0, : lengths[0]].copy().view(initial.dtype).reshape(-1)
