"""The annealing loop on the numpy path (docs/ENGINE.md §3), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.cpu.match import Matcher, decode_key, potential
from sae.cpu.rewrite import apply_rewrites
from sae.layout import COMMITTED, ITEM_WORDS, REVERTED, item_words


class Annealer:
    """Runs the loop of one Algorithm; scratch buffers are sized once per batch size."""

    def __init__(self, alg: Algorithm, matcher: Matcher) -> None:
        self.alg, self.m = alg, matcher
        self.params = alg.params
        self.symbol_rows = alg.symbol_rows.astype(np.uint32)
        self._backup: np.ndarray | None = None
        self._inhibit: np.ndarray | None = None

    def _scratch(self, batch: ProgramBatch) -> tuple[np.ndarray, np.ndarray]:
        shape = (batch.size, batch.caps.stream, ITEM_WORDS)
        if self._backup is None or self._backup.shape != shape:
            self._backup = np.zeros(shape, dtype=np.uint32)
            self._inhibit = np.zeros((batch.size, max(self.m.n_rules, 1)), dtype=np.uint32)
        assert self._inhibit is not None
        return self._backup, self._inhibit

    def run(self, batch: ProgramBatch) -> None:
        """Anneal every document of ``batch`` in place, filling its journal."""
        n, length = batch.n, batch.max_length()
        if n == 0 or length == 0 or self.m.n_rules == 0:
            return
        backup, inhibit = self._scratch(batch)
        inhibit[:n] = 0
        words = item_words(batch.items)[:n, :length]
        lengths = batch.lengths[:n]
        keys = self.m.bids(self.m.view(words, lengths))
        for step in range(self.params.max_steps):
            active = keys.any(axis=(1, 2))
            if not active.any():
                break
            p0 = potential(keys)
            eligible = np.where(inhibit[:n, None, :] == 0, keys, 0).reshape(n, -1)
            best = eligible.max(axis=1)
            _, _, best_rule = decode_key(best)
            rules_of = np.arange(self.m.n_rules, dtype=np.int64)
            others = np.where(rules_of[None, None, :] == best_rule[:, None, None], 0, eligible.reshape(keys.shape))
            nxt = others.reshape(n, -1).max(axis=1)
            inhibit[:n] -= inhibit[:n] > 0
            tried, committed = self._attempt(batch, words, lengths, keys, backup, inhibit, best, p0, step, 0)
            retry = tried & ~committed & (nxt > 0)
            self._attempt(batch, words, lengths, keys, backup, inhibit, np.where(retry, nxt, 0), p0, step, 1)

    def _attempt(
        self,
        batch: ProgramBatch,
        words: np.ndarray,
        lengths: np.ndarray,
        keys: np.ndarray,
        backup: np.ndarray,
        inhibit: np.ndarray,
        key: np.ndarray,
        p0: np.ndarray,
        step: int,
        attempt: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tentatively apply bid ``key[d]`` (0 = none) to each document; commit or revert.

        Returns the masks of documents that attempted and that committed.
        """
        tried = key > 0
        committed = np.zeros_like(tried)
        docs = np.flatnonzero(tried)
        if docs.size == 0:
            return tried, committed
        length = words.shape[1]
        score, anchor, rule = decode_key(key[docs])
        backup[docs, :length] = words[docs]
        saved_lengths = lengths[docs].copy()
        apply_rewrites(self.m, words, lengths, docs, anchor, rule, self.symbol_rows)
        new_keys = self.m.bids(self.m.view(words[docs], lengths[docs]))
        p1 = potential(new_keys)
        commit = p0[docs] - p1 <= score + self.params.tolerance
        keys[docs[commit]] = new_keys[commit]
        reverted = docs[~commit]
        words[reverted] = backup[reverted, :length]
        lengths[reverted] = saved_lengths[~commit]
        inhibit[reverted, rule[~commit]] = self.params.inhibit_steps
        committed[docs[commit]] = True
        # Journal: one entry per attempt.
        slot = batch.journal_len[docs]
        entry = batch.journal[docs, slot]
        entry["step"] = step
        entry["attempt"] = attempt
        entry["rule"] = rule
        entry["pos"] = anchor
        entry["score"] = score
        entry["potential_before"] = p0[docs]
        entry["potential_after"] = p1
        entry["outcome"] = np.where(commit, COMMITTED, REVERTED)
        batch.journal[docs, slot] = entry
        batch.journal_len[docs] += 1
        return tried, committed


def replay(annealer: Annealer, initial: np.ndarray, journal: np.ndarray) -> np.ndarray:
    """Re-apply the committed entries of one document's journal to its initial program.

    ``initial`` holds the document's ProgramItems (its length = ``len(initial)``).
    Returns the resulting items. Since reverted attempts are skipped, this equals
    the annealed program exactly when every revert restored the stream exactly.
    """
    words = item_words(initial.copy())[None]
    lengths = np.array([len(initial)], dtype=np.uint32)
    for entry in journal[journal["outcome"] == COMMITTED]:
        apply_rewrites(
            annealer.m, words, lengths, np.array([0]), np.array([int(entry["pos"])]),
            np.array([int(entry["rule"])]), annealer.symbol_rows,
        )
    return words[0, : lengths[0]].copy().view(initial.dtype).reshape(-1)
