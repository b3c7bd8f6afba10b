"""The annealing loop on the numpy path (docs/ENGINE.md §3), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.cpu.match import Matcher, decode_key, potential
from sae.cpu.rewrite import apply_rewrites
from sae.layout import COMMITTED, ITEM_WORDS, REVERTED, item_words


def _keys_at(keys: np.ndarray, docs: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``keys[docs]`` at per-document anchors ``(G, A)``; anchors out of range give no bid."""
    valid = (anchors >= 0) & (anchors < keys.shape[1])
    out = keys[docs[:, None], np.clip(anchors, 0, keys.shape[1] - 1)]
    out[~valid] = 0
    return out


def _put_keys(keys: np.ndarray, docs: np.ndarray, anchors: np.ndarray, values: np.ndarray) -> None:
    valid = (anchors >= 0) & (anchors < keys.shape[1])
    rows = np.broadcast_to(docs[:, None], anchors.shape)
    keys[rows[valid], anchors[valid]] = values[valid]


def _shift_keys(keys: np.ndarray, docs: np.ndarray, anchor: np.ndarray, shift: np.ndarray) -> None:
    """After a merge at ``anchor``, bids past it move left by ``shift`` with the same score."""
    sel = shift > 0
    docs, anchor, shift = docs[sel], anchor[sel], shift[sel]
    if docs.size == 0:
        return
    length = keys.shape[1]
    a = np.arange(length)[None, :]
    after = a > anchor[:, None]
    moved = _keys_at(keys, docs, np.where(after, a + shift[:, None], a))
    # The tie-break encodes the anchor: one position left adds 32 to the key.
    moved += np.where(after[..., None] & (moved > 0), shift[:, None, None] << 5, 0).astype(np.uint32)
    keys[docs] = moved


class Annealer:
    """Runs the loop of one Algorithm; scratch buffers are sized once per batch size."""

    #: Tests set this to check every incremental bid update against a full recount.
    verify_incremental = False

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
        if n == 0 or length == 0 or self.m.n_rules == 0 or self.params.max_steps == 0:
            return
        backup, inhibit = self._scratch(batch)
        inhibit[:n] = 0
        words = item_words(batch.items)[:n, :length]
        lengths = batch.lengths[:n]
        keys = self.m.bids(self.m.view(words, lengths))
        pot = potential(keys)
        rule_ids = np.arange(self.m.n_rules, dtype=np.int64)
        live = np.arange(n)  # documents not finished yet
        for step in range(self.params.max_steps):
            live = live[keys[live].any(axis=(1, 2))]
            if live.size == 0:
                break
            eligible = np.where(inhibit[live, None, :] == 0, keys[live], 0)
            best = eligible.max(axis=(1, 2))
            _, _, best_rule = decode_key(best)
            nxt = np.where(rule_ids == best_rule[:, None], 0, eligible.max(axis=1)).max(axis=1)
            inhibit[live] -= inhibit[live] > 0
            tried, committed = self._attempt(batch, words, lengths, keys, pot, backup, inhibit, live, best, step, 0)
            retry = tried & ~committed & (nxt > 0)
            self._attempt(batch, words, lengths, keys, pot, backup, inhibit, live[retry], nxt[retry], step, 1)

    def _attempt(
        self,
        batch: ProgramBatch,
        words: np.ndarray,
        lengths: np.ndarray,
        keys: np.ndarray,
        pot: np.ndarray,
        backup: np.ndarray,
        inhibit: np.ndarray,
        docs: np.ndarray,
        key: np.ndarray,
        step: int,
        attempt: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tentatively apply bid ``key[i]`` (0 = none) to document ``docs[i]``; commit or revert.

        ``keys`` and ``pot`` (bids and potential per document) are kept current.
        Returns the masks (over ``docs``) of attempted and committed rewrites.
        """
        tried = key > 0
        committed = np.zeros_like(tried)
        docs, key = docs[tried], key[tried]
        if docs.size == 0:
            return tried, committed
        p0 = pot[docs]
        length = words.shape[1]
        score, anchor, rule = decode_key(key)
        backup[docs, :length] = words[docs]
        saved_lengths = lengths[docs].copy()
        last, shift = apply_rewrites(self.m, words, lengths, docs, anchor, rule, self.symbol_rows)
        # Only bids anchored within reach of the rewrite change (docs/ENGINE.md §2:
        # a match depends on the items from its anchor to anchor + reach); a merge
        # shifts every later bid left unchanged. So P1 = P0 - old window + new window.
        first = anchor - self.m.reach
        window = first[:, None] + np.arange(2 * self.m.reach + 1 + int(shift.max(initial=0)))
        old_window = np.where(window <= last[:, None], window, -1)
        new_window = np.where(window <= (last - shift)[:, None], window, -1)
        old_keys = _keys_at(keys, docs, old_window)
        new_keys = self.m.bids(self.m.view(words[docs], lengths[docs]), new_window)
        p1 = p0 - potential(old_keys) + potential(new_keys)
        commit = p0 - p1 <= score + self.params.tolerance
        c = docs[commit]
        pot[c] = p1[commit]
        _shift_keys(keys, c, anchor[commit], shift[commit])
        _put_keys(keys, c, new_window[commit], new_keys[commit])
        if self.verify_incremental:
            full = self.m.bids(self.m.view(words[docs], lengths[docs]))
            assert (potential(full) == p1).all(), "incremental potential differs from a full recount"
            assert (keys[c] == full[commit]).all(), "incremental bid keys differ from a full recount"
        reverted = docs[~commit]
        words[reverted] = backup[reverted, :length]
        lengths[reverted] = saved_lengths[~commit]
        inhibit[reverted, rule[~commit]] = self.params.inhibit_steps
        committed[np.flatnonzero(tried)[commit]] = True
        # Journal: one entry per attempt.
        slot = batch.journal_len[docs]
        entry = batch.journal[docs, slot]
        entry["step"] = step
        entry["attempt"] = attempt
        entry["rule"] = rule
        entry["pos"] = anchor
        entry["score"] = score
        entry["potential_before"] = p0
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
