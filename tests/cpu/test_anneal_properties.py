"""Invariants of the annealing loop on the numpy path (hypothesis)."""

from __future__ import annotations

import tracemalloc
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, texts
from tiny import make_tiny

from sae.algorithm import LoopParams
from sae.batch import ProgramBatch
from sae.cpu import CpuBackend
from sae.cpu.anneal import replay, select_winners
from sae.layout import DEFAULT_CAPACITIES
from sae.rules_text import parse_rules

CAPS = DEFAULT_CAPACITIES


def run(alg, batch_texts):
    backend = CpuBackend(alg, CAPS)
    batch = ProgramBatch(len(batch_texts), CAPS)
    tok = alg.tokenizer
    batch.widen([e.ids for e in tok.encode_batch(batch_texts, add_special_tokens=False)], alg.symbol_rows)
    initial = batch.items.copy(), batch.lengths.copy()
    backend.anneal(batch)
    return backend, batch, initial


@settings(max_examples=60)
@given(algorithms(), texts)
def test_replaying_commits_reproduces_the_final_stream(alg, batch_texts):
    """Reverted attempts leave no trace: the commits alone rebuild the stream byte for byte."""
    backend, batch, (items0, lengths0) = run(alg, batch_texts)
    for d in range(batch.n):
        journal = batch.journal[d, : batch.journal_len[d]]
        rebuilt = replay(backend.annealer, items0[d, : lengths0[d]], journal)
        final = batch.items[d, : batch.lengths[d]]
        assert rebuilt.tobytes() == final.tobytes()
        # Everything past the length is zero, so streams compare as whole rows.
        assert not batch.items[d, batch.lengths[d]:].view(np.uint32).any()


@settings(max_examples=40)
@given(algorithms(reorder_only=True), texts)
def test_reorder_only_rules_conserve_the_tokens(alg, batch_texts):
    _, batch, (items0, lengths0) = run(alg, batch_texts)
    for d in range(batch.n):
        assert batch.lengths[d] == lengths0[d]
        before = Counter(items0[d, : lengths0[d]]["token"].tolist())
        after = Counter(batch.items[d, : batch.lengths[d]]["token"].tolist())
        assert before == after


@settings(max_examples=40)
@given(algorithms(), texts)
def test_steps_journal_their_winners_in_anchor_order(alg, batch_texts):
    _, batch, _ = run(alg, batch_texts)
    for d in range(batch.n):
        journal = batch.journal[d, : batch.journal_len[d]]
        assert len(journal) <= CAPS.journal
        assert (np.diff(journal["step"].astype(np.int64)) >= 0).all()
        assert (journal["step"] < max(alg.params.max_steps, 1)).all()
        for step in np.unique(journal["step"]):
            at = journal[journal["step"] == step]
            assert (at["rank"] == np.arange(len(at))).all()
            assert (np.diff(at["pos"].astype(np.int64)) > 0).all()
            # Every winner is judged against the same potential of the step's start.
            assert (at["potential_before"] == at["potential_before"][0]).all()


@st.composite
def candidates(draw):
    """Candidate keys (unique, 0 = none) of a few documents and random footprints."""
    width = draw(st.integers(1, 5))
    docs, length = draw(st.integers(1, 3)), draw(st.integers(1, 20))
    keys = draw(st.permutations(range(1, docs * length + 1)))
    present = draw(st.lists(st.booleans(), min_size=docs * length, max_size=docs * length))
    cand = np.array([k if on else 0 for k, on in zip(keys, present)], dtype=np.uint32).reshape(docs, length)
    fields = st.lists(st.integers(0, 63), min_size=docs * length * width, max_size=docs * length * width)
    marks = st.lists(st.integers(0, 3), min_size=docs * length * width, max_size=docs * length * width)

    def plane(values):
        out = np.array(values, dtype=np.uint8).reshape(docs, length, width)
        out[cand == 0] = 0
        return out

    return cand, plane(draw(fields)), plane(draw(fields)), plane(draw(marks))


@settings(max_examples=200)
@given(candidates())
def test_winners_beat_every_candidate_they_interfere_with(case):
    """The vectorized selection against the plain reading of §3's interference."""
    cand, read, write, mark = case
    width = read.shape[2]
    # A footprint reaches as far as its last nonzero offset.
    touched = (read | write | mark) > 0
    last = np.where(touched.any(axis=2), np.arange(cand.shape[1]) + width - 1 - np.argmax(touched[..., ::-1], axis=2),
                    np.arange(cand.shape[1]))
    g, p = np.nonzero(cand)
    won = select_winners(g, p, cand[g, p], last[g, p], read[g, p], write[g, p], mark[g, p])
    win = np.zeros(cand.shape, dtype=bool)
    win[g[won], p[won]] = True

    def interfere(d, p, q):
        for x in range(max(p, q), min(p, q) + width):
            i, j = x - p, x - q
            if write[d, p, i] & (read[d, q, j] | write[d, q, j]) or write[d, q, j] & read[d, p, i]:
                return True
            if mark[d, p, i] and mark[d, p, i] == mark[d, q, j]:
                return True
        return False

    for d in range(cand.shape[0]):
        anchors = np.flatnonzero(cand[d])
        for p in anchors:
            rivals = [cand[d, q] for q in anchors if q != p and interfere(d, p, q)]
            assert win[d, p] == all(cand[d, p] > r for r in rivals)
        assert not win[d][cand[d] == 0].any()


@settings(max_examples=25)
@given(algorithms(), texts)
def test_same_input_twice_gives_the_same_bytes(alg, batch_texts):
    _, a, _ = run(alg, batch_texts)
    backend, b, _ = run(alg, batch_texts)
    assert a.items.tobytes() == b.items.tobytes()
    assert a.journal.tobytes() == b.journal.tobytes()
    assert backend.execute(a).tobytes() == backend.execute(b).tobytes()


def test_steps_do_not_grow_memory():
    """Extra steps add no retained or peak memory.

    numpy makes short-lived temporaries inside a step; what must hold is that
    nothing accumulates per step: the peak for 64 steps equals the peak for 4.
    """
    # Overlapping swaps of equal score form a chain: the leftmost wins each step,
    # so this sentence needs one step per pair of words.
    texts = ["cat dog " * 40] * 32
    chain = parse_rules("rule swap score 20: [word] [word] => perm 1 0")

    def measure(max_steps: int):
        alg = make_tiny(rules=chain, params=LoopParams(max_steps=max_steps, tolerance=10**6, inhibit_steps=1))
        backend = CpuBackend(alg, CAPS)
        batch = ProgramBatch(len(texts), CAPS)
        ids = [e.ids for e in alg.tokenizer.encode_batch(texts, add_special_tokens=False)]
        batch.widen(ids, alg.symbol_rows)
        backend.anneal(batch)  # warm-up: scratch buffers are sized here
        batch.widen(ids, alg.symbol_rows)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        backend.anneal(batch)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        steps = int(batch.journal["step"][:, : batch.journal_len.max()].max()) + 1
        return current - base, peak - base, steps

    retained_short, peak_short, steps_short = measure(4)
    retained_long, peak_long, steps_long = measure(64)
    assert steps_long > 4 * steps_short  # the long run really does more steps
    assert retained_long <= 4096 and retained_short <= 4096
    assert peak_long <= peak_short * 1.1 + 4096
