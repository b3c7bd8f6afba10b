"""The annealing loop on the numpy path (docs/ENGINE.md §3), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.cpu.match import Matcher, decode_key
from sae.cpu.rewrite import apply_winners
from sae.layout import COMMITTED, JOURNAL_WORDS, REVERTED, RULE_MERGE, item_words


def select_winners(cand: np.ndarray, last: np.ndarray, reach: int) -> np.ndarray:
    """Which candidates beat every other candidate their span overlaps (§3 step 3).

    ``cand[g, p]`` is the best eligible key anchored at ``p`` (0 = none) and
    ``last[g, p]`` the last item of its span. A span reaches at most ``reach`` items
    past its anchor, so only anchors that close can overlap.
    """
    win = cand > 0
    pos = np.arange(cand.shape[1])
    for o in range(1, min(reach, cand.shape[1] - 1) + 1):
        left, left_last = np.zeros_like(cand), np.full_like(last, -1)
        left[:, o:], left_last[:, o:] = cand[:, :-o], last[:, :-o]
        win &= ~((left > cand) & (left_last >= pos))
        right = np.zeros_like(cand)
        right[:, :-o] = cand[:, o:]
        win &= ~((right > cand) & (pos + o <= last))
    return win


class Annealer:
    """Runs the loop of one Algorithm over a batch of documents at once."""

    def __init__(self, alg: Algorithm, matcher: Matcher) -> None:
        self.alg, self.m = alg, matcher
        self.params = alg.params
        self.symbol_rows = alg.symbol_rows.astype(np.uint32)
        self._merge = np.array([r["kind"] == RULE_MERGE for r in matcher.rules] or [False])

    def run(self, batch: ProgramBatch) -> None:
        """Anneal every document of ``batch`` in place, filling its journal."""
        n, length = batch.n, batch.max_length()
        if n == 0 or length == 0 or self.m.n_rules == 0 or self.params.max_steps == 0:
            return
        words = item_words(batch.items)[:n, :length]
        lengths = batch.lengths[:n]
        keys = self.m.bids(self.m.view(words, lengths))
        scores = _anchor_scores(keys)  # per anchor, the sum of its bids' scores
        inhibit = np.zeros((n, self.m.n_rules), dtype=np.uint32)
        live = np.arange(n)  # documents not finished yet
        for step in range(self.params.max_steps):
            top = keys[:, live].max(axis=0)  # the best key at each anchor
            has_bid = top.any(axis=1)
            live, top = live[has_bid], top[has_bid]
            if live.size == 0:
                break
            batch.stats.steps = step + 1
            self._step(batch, words, lengths, keys, scores, inhibit, live, top, step)

    def _step(
        self,
        batch: ProgramBatch,
        words: np.ndarray,
        lengths: np.ndarray,
        keys: np.ndarray,
        scores: np.ndarray,
        inhibit: np.ndarray,
        live: np.ndarray,
        top: np.ndarray,
        step: int,
    ) -> None:
        """One step of §3 for the ``live`` documents; ``keys`` and ``scores`` are kept current."""
        m, reach = self.m, self.m.reach
        held = inhibit[live]
        cand = top
        if held.any():
            cand = np.where(held.T[:, :, None] == 0, keys[:, live], 0).max(axis=0)
            inhibit[live] -= held > 0
        last = self._last(words, lengths, live, cand)
        win = select_winners(cand, last, reach)
        rank = np.cumsum(win, axis=1) - 1
        win &= rank < (batch.caps.journal - batch.journal_len[live].astype(np.int64))[:, None]
        active = win.any(axis=1)
        if not active.any():
            return
        docs, cand, last, win, rank = live[active], cand[active], last[active], win[active], rank[active]
        # The tentative stream: every winner applied; words[docs] stays the backup.
        tent, tent_len = words[docs], lengths[docs].copy()
        winners = np.where(win, cand, 0)
        removed = apply_winners(m, tent, tent_len, winners, self.symbol_rows)
        new_keys = m.bids(m.view(tent, tent_len))
        # Health of each winner: the change of the bid scores within its reach.
        g, p = np.nonzero(win)
        score, _, rule = decode_key(cand[g, p])
        new_scores = _anchor_scores(new_keys)
        old_sum, new_sum = _prefix(scores[docs]), _prefix(new_scores)
        lo, hi = np.maximum(p - reach, 0), last[g, p]
        shift = removed[g, p] if removed is not None else np.zeros_like(p)
        own = np.where(self._merge[rule], hi - p, 0)
        new_lo, new_hi = np.maximum(p - shift - reach, 0), hi - shift - own
        delta = (old_sum[g, hi + 1] - old_sum[g, lo]) - (new_sum[g, new_hi + 1] - new_sum[g, new_lo])
        commit = delta <= score + self.params.tolerance
        p0 = old_sum[g, -1]
        batch.stats.committed += int(commit.sum())
        batch.stats.reverted += int(commit.size - commit.sum())
        self._journal(batch, docs[g], rank[g, p], step, rule, p, score, p0, p0 - delta, commit)
        # Documents where everything committed keep the tentative stream.
        clean = np.ones(len(docs), dtype=bool)
        clean[g[~commit]] = False
        ok = docs[clean]
        words[ok], lengths[ok], keys[:, ok], scores[ok] = tent[clean], tent_len[clean], new_keys[:, clean], new_scores[clean]
        if clean.all():
            return
        # The others start again from the backup with their committed winners only.
        inhibit[docs[g[~commit]], rule[~commit]] = self.params.inhibit_steps
        redo = docs[~clean]
        winners[g[~commit], p[~commit]] = 0
        w, w_len = words[redo], lengths[redo].copy()
        apply_winners(m, w, w_len, winners[~clean], self.symbol_rows)
        words[redo], lengths[redo] = w, w_len
        redo_keys = m.bids(m.view(w, w_len))
        keys[:, redo], scores[redo] = redo_keys, _anchor_scores(redo_keys)

    def _last(self, words: np.ndarray, lengths: np.ndarray, live: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """The last item of each candidate's span (-1 where there is no candidate)."""
        _, _, rule = decode_key(cand)
        rule[cand == 0] = 0
        last = np.arange(cand.shape[1]) + self.m.extent[rule]
        for r in np.flatnonzero(self.m.extent < 0):
            g, p = np.nonzero((cand > 0) & (rule == r))
            if g.size:
                docs = live[g]
                found = self.m.match(self.m.view(words[docs], lengths[docs]), p[:, None], int(r))
                last[g, p] = found.q[:, 0, -1]
        last[cand == 0] = -1
        return last

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


def _anchor_scores(keys: np.ndarray) -> np.ndarray:
    """``(G, L)`` sum of the bid scores (every rule) at each anchor of rule-major keys."""
    return (keys >> np.uint32(16)).sum(axis=0, dtype=np.int32)  # < stream * rules * SCORE_MAX


def _prefix(scores: np.ndarray) -> np.ndarray:
    """``(G, L+1)`` prefix sums over anchors: window sums become two lookups."""
    out = np.zeros((scores.shape[0], scores.shape[1] + 1), dtype=np.int64)
    np.cumsum(scores, axis=1, out=out[:, 1:])
    return out


def replay(annealer: Annealer, initial: np.ndarray, journal: np.ndarray) -> np.ndarray:
    """Re-apply the committed entries of one document's journal to its initial program.

    ``initial`` holds the document's ProgramItems (its length = ``len(initial)``).
    Entries are applied one at a time, each step's from right to left, so no merge
    moves an anchor still to come (docs/ENGINE.md §3). Returns the resulting items:
    they equal the annealed program exactly when reverts restored streams exactly
    and applying a step's winners together equals applying them one by one.
    """
    m = annealer.m
    words = item_words(initial.copy())[None]
    lengths = np.array([len(initial)], dtype=np.uint32)
    done = journal[journal["outcome"] == COMMITTED]
    for entry in done[np.lexsort((-done["pos"].astype(np.int64), done["step"]))]:
        winners = np.zeros((1, words.shape[1]), dtype=np.uint32)
        pos, rule = int(entry["pos"]), int(entry["rule"])
        winners[0, pos] = (int(entry["score"]) << 16) | (0xFFFF - ((pos << 5) | rule))
        apply_winners(m, words, lengths, winners, annealer.symbol_rows)
    return words[0, : lengths[0]].copy().view(initial.dtype).reshape(-1)
