"""The annealing loop on the numpy path (docs/ENGINE.md §3), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.cpu.match import Matcher, StreamView
from sae.cpu.rewrite import apply_winners
from sae.layout import COMMITTED, ITEM_WORDS, JOURNAL_WORDS, REVERTED, RULE_MERGE, item_words


def select_winners(cand: np.ndarray, last: np.ndarray, read: np.ndarray, write: np.ndarray, mark: np.ndarray
                   ) -> np.ndarray:
    """Which candidates beat every other candidate they interfere with (§3 step 3).

    ``cand[g, p]`` is the best eligible key anchored at ``p`` (0 = none) and
    ``last[g, p]`` the last item it examines; ``read``, ``write`` and ``mark``
    (``(G, L, reach + 1)``) are its footprint: the fields it examines and writes, and
    the mark bit + 1 it sets, on item ``p + j``. Only candidates whose extents overlap
    can interfere, so only those pairs are compared.
    """
    win = cand > 0
    length, width = cand.shape[1], read.shape[2]
    for o in range(1, min(width, length)):
        # A at p, B at p + o, A's extent reaching B's anchor: they share items p + o + i
        # (A's offset i + o, B's offset i).
        g, p = np.nonzero((cand[:, :-o] > 0) & (cand[:, o:] > 0) & (last[:, :-o] >= np.arange(o, length)))
        if g.size == 0:
            continue
        q = p + o
        wa, ra, ma = write[g, p, o:], read[g, p, o:], mark[g, p, o:]
        wb, rb, mb = write[g, q, : width - o], read[g, q, : width - o], mark[g, q, : width - o]
        clash = ((wa & (rb | wb)) | (wb & ra)).any(axis=1) | ((ma == mb) & (ma > 0)).any(axis=1)
        ka, kb = cand[g, p], cand[g, q]
        lose_a, lose_b = clash & (kb > ka), clash & (ka > kb)
        win[g[lose_a], p[lose_a]] = False
        win[g[lose_b], q[lose_b]] = False
    return win


class Annealer:
    """Runs the loop of one Algorithm over a batch of documents at once."""

    def __init__(self, alg: Algorithm, matcher: Matcher) -> None:
        self.alg, self.m = alg, matcher
        self.params = alg.params
        self.symbol_rows = alg.symbol_rows.astype(np.uint32)
        self._merge = np.array([int(r["kind"]) == RULE_MERGE for r in matcher.rules] or [False])

    def run(self, batch: ProgramBatch) -> None:
        """Anneal every document of ``batch`` in place, filling its journal."""
        m = self.m
        n, length = batch.n, batch.max_length()
        if n == 0 or length == 0 or m.actors.size == 0 or self.params.max_steps == 0:
            return
        words = item_words(batch.items)[:n, :length]
        lengths = batch.lengths[:n]
        view = m.view(words, lengths)  # kept current: the rows of rewritten documents are replaced
        keys = m.bids(view)
        inhibit = np.zeros((n, m.n_rules), dtype=np.uint32)
        live = np.arange(n)  # documents not finished yet
        for step in range(self.params.max_steps):
            top = keys[m.actors][:, live].max(axis=0)  # the best rewrite or merge key at each anchor
            has_bid = top.any(axis=1)
            live, top = live[has_bid], top[has_bid]
            if live.size == 0:
                break
            batch.stats.steps = step + 1
            self._step(batch, words, lengths, view, keys, inhibit, live, top, step)

    def _step(
        self,
        batch: ProgramBatch,
        words: np.ndarray,
        lengths: np.ndarray,
        view: StreamView,
        keys: np.ndarray,
        inhibit: np.ndarray,
        live: np.ndarray,
        top: np.ndarray,
        step: int,
    ) -> None:
        """One step of §3 for the ``live`` documents; ``view`` and ``keys`` are kept current."""
        m = self.m
        held = inhibit[live]
        cand = top
        if held.any():
            eligible = (held.T[m.actors] == 0)[:, :, None]  # (actors, docs, 1)
            cand = np.where(eligible, keys[m.actors][:, live], 0).max(axis=0)
            inhibit[live] -= held > 0
        last, read, write, mark = self._footprints(view, live, cand)
        win = select_winners(cand, last, read, write, mark)
        rank = np.cumsum(win, axis=1) - 1
        win &= rank < (batch.caps.journal - batch.journal_len[live].astype(np.int64))[:, None]
        active = win.any(axis=1)
        if not active.any():
            return
        docs, cand, last, win, rank = live[active], cand[active], last[active], win[active], rank[active]
        g, p = np.nonzero(win)
        score, _, rule = m.keys.unpack(cand[g, p])
        p0 = m.potential(keys[:, docs])[g]
        if m.guards.size:
            delta = self._judge(words, lengths, keys, docs, g, p, last[g, p], cand[g, p], rule)
        else:
            delta = np.zeros(len(g), dtype=np.int64)  # no guards: the check is not run (§3 step 5)
        commit = delta <= score + self.params.tolerance
        batch.stats.committed += int(commit.sum())
        batch.stats.reverted += int(commit.size - commit.sum())
        self._journal(batch, docs[g], rank[g, p], step, rule, p, score, p0, p0 - delta, commit)
        inhibit[docs[g[~commit]], rule[~commit]] = self.params.inhibit_steps
        # Apply the committed winners at once and bid again where something changed.
        winners = np.zeros_like(cand)
        winners[g[commit], p[commit]] = cand[g[commit], p[commit]]
        changed = np.unique(g[commit])
        if changed.size == 0:
            return
        redo = docs[changed]
        w, w_len = words[redo], lengths[redo].copy()
        apply_winners(m, w, w_len, winners[changed], self.symbol_rows)
        words[redo], lengths[redo] = w, w_len
        fresh = m.view(w, w_len)
        keys[:, redo] = m.bids(fresh)
        view.lengths[redo] = fresh.lengths  # (view.symbol is a view of words: already current)
        for plane, new in zip(view.tests, fresh.tests):
            plane[redo] = new

    def _footprints(self, view: StreamView, live: np.ndarray, cand: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each candidate's extent end (-1 where there is none) and footprint (see :func:`select_winners`)."""
        m = self.m
        _, _, rule = m.keys.unpack(cand)
        rule[cand == 0] = 0
        none = cand == 0
        last = np.arange(cand.shape[1]) + m.extent[rule]
        read, write, mark = m.static_read[rule], m.static_write[rule], m.static_mark[rule]
        for r in np.flatnonzero(m.extent < 0):
            g, p = np.nonzero(~none & (rule == r))
            if g.size:
                rows = view.rows(live[g])
                found = m.match(rows, p[:, None], int(r))
                last[g, p] = found.extent[:, 0]
                read[g, p], write[g, p], mark[g, p] = m.footprint(found, p, rows.lengths[:, 0], int(r))
        last[none] = -1
        read[none] = write[none] = mark[none] = 0
        return last, read, write, mark

    def _judge(
        self,
        words: np.ndarray,
        lengths: np.ndarray,
        keys: np.ndarray,
        docs: np.ndarray,
        g: np.ndarray,
        p: np.ndarray,
        z: np.ndarray,
        key: np.ndarray,
        rule: np.ndarray,
    ) -> np.ndarray:
        """δ of every winner (§3 step 5): guards of S it touches minus all bids of S_w touching it.

        ``g`` indexes ``docs``; winner ``i`` is anchored at ``p[i]`` with extent end
        ``z[i]``. S_w is built per winner as a window of its document: the items any
        bid touching the winner can examine, ``[p - reach, z + reach]``.
        """
        m, reach = self.m, self.m.reach
        n = lengths[docs[g]].astype(np.int64)
        # Guards of S touching the winner: anchored in [p - reach, z], extent reaching p.
        guard_sum = np.zeros(len(g), dtype=np.int64)
        doc_rows = np.unique(g)
        view = m.view(words[docs[doc_rows]], lengths[docs[doc_rows]])
        anchors = np.arange(words.shape[1], dtype=np.int64)
        where = np.searchsorted(doc_rows, g)
        for r in m.guards:
            found = m.match(view, np.broadcast_to(anchors, (len(doc_rows), len(anchors))), int(r))
            ok, ends, score = found.ok[where], found.extent[where], found.score[where]
            at = anchors[None, :]
            touch = ok & (at >= (p - reach)[:, None]) & (at <= z[:, None]) & (ends >= p[:, None])
            guard_sum -= (np.where(touch, score, 0)).sum(axis=1)
        # S_w: each winner applied alone to a window of its document.
        a = np.maximum(p - reach, 0)
        b = np.minimum(z + reach, n - 1)
        width = int((b - a).max()) + 1
        idx = a[:, None] + np.arange(width)
        inside = idx <= b[:, None]
        mini = np.where(inside[..., None], words[docs[g][:, None], np.minimum(idx, words.shape[1] - 1)], 0)
        mini = np.ascontiguousarray(mini, dtype=np.uint32).reshape(len(g), width, ITEM_WORDS)
        mini_len = (b - a + 1).astype(np.uint32)
        local = np.zeros((len(g), width), dtype=np.uint32)
        local[np.arange(len(g)), p - a] = m.keys.pack(m.keys.score(key), p - a, rule)
        apply_winners(m, mini, mini_len, local, self.symbol_rows, offset=a, total=n)
        removed = np.where(self._merge[rule], (b - a + 1) - mini_len.astype(np.int64), 0)
        new_keys, new_ends = m.bids(m.view(mini, mini_len, offset=a, total=n - removed), extents=True)
        lo, hi = p - a, z - removed - a  # the winner's extent in window coordinates
        at = np.arange(width)[None, :]
        new_sum = np.zeros(len(g), dtype=np.int64)
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
