"""Invariants of the reference on random Algorithms and token streams (hypothesis)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
from equivalence import widened
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, token_streams

from sae import reference as ref
from sae.layout import COMMITTED, DEFAULT_CAPACITIES, REVERTED, Capacities

#: Capacities the engine may run with: the default, a small journal (winners get dropped),
#: and a short stream with fewer rules (other key bit widths).
capacities = st.sampled_from([DEFAULT_CAPACITIES, Capacities(journal=3), Capacities(stream=16, rules=8, journal=5)])
documents = st.lists(token_streams(20), min_size=1, max_size=4)


def annealed(alg, docs, caps):
    batch = widened(alg, docs, caps)
    initial = [ref.read_stream(batch, d) for d in range(batch.n)]
    ref.ReferenceBackend(alg, caps).anneal(batch)
    return batch, initial


@settings(max_examples=40)
@given(algorithms(), documents, capacities)
def test_replaying_the_commits_rebuilds_the_final_stream(alg, docs, caps):
    batch, initial = annealed(alg, docs, caps)
    for d in range(batch.n):
        assert ref.replay(alg, caps, initial[d], ref.journal_entries(batch, d)) == ref.read_stream(batch, d)


@settings(max_examples=30)
@given(algorithms(reorder_only=True), documents)
def test_reorder_only_rules_conserve_the_tokens(alg, docs):
    batch, initial = annealed(alg, docs, DEFAULT_CAPACITIES)
    for d in range(batch.n):
        final = ref.read_stream(batch, d)
        assert Counter((x.token, x.pos) for x in final) == Counter((x.token, x.pos) for x in initial[d])


@settings(max_examples=40)
@given(algorithms(), documents, capacities)
def test_the_loop_ends_within_max_steps_and_the_journal_within_its_capacity(alg, docs, caps):
    batch, initial = annealed(alg, docs, caps)
    assert batch.stats.steps <= alg.params.max_steps
    assert batch.stats.committed + batch.stats.reverted == int(batch.journal_len[: batch.n].sum())
    for d in range(batch.n):
        journal = ref.journal_entries(batch, d)
        assert len(journal) <= caps.journal
        assert all(e["step"] < alg.params.max_steps for e in journal)
        assert [e["step"] for e in journal] == sorted(e["step"] for e in journal)
        for step in {e["step"] for e in journal}:
            at = [e for e in journal if e["step"] == step]
            assert [e["rank"] for e in at] == list(range(len(at)))
            assert all(a["pos"] < b["pos"] for a, b in itertools.pairwise(at))
            assert len({e["potential_before"] for e in at}) == 1
        # Spans are conserved: merges only fold them.
        assert sum(x.span for x in ref.read_stream(batch, d)) == len(initial[d])


@settings(max_examples=40)
@given(algorithms(guards=False), documents)
def test_without_guards_nothing_is_reverted(alg, docs):
    batch, _ = annealed(alg, docs, DEFAULT_CAPACITIES)
    assert batch.stats.reverted == 0
    for d in range(batch.n):
        for e in ref.journal_entries(batch, d):
            assert e["outcome"] == COMMITTED and e["potential_after"] == e["potential_before"]


@settings(max_examples=25)
@given(algorithms(), documents)
def test_the_same_input_twice_gives_the_same_bytes(alg, docs):
    a, _ = annealed(alg, docs, DEFAULT_CAPACITIES)
    b, _ = annealed(alg, docs, DEFAULT_CAPACITIES)
    assert a.items.tobytes() == b.items.tobytes()
    assert a.lengths.tobytes() == b.lengths.tobytes()
    assert a.journal.tobytes() == b.journal.tobytes()
    backend = ref.ReferenceBackend(alg, DEFAULT_CAPACITIES)
    with np.errstate(under="ignore"):
        assert backend.execute(a).tobytes() == backend.execute(b).tobytes()


@settings(max_examples=40)
@given(algorithms(), documents)
def test_marks_come_only_from_rules_that_committed(alg, docs):
    batch, _ = annealed(alg, docs, DEFAULT_CAPACITIES)
    for d in range(batch.n):
        allowed = 0
        for e in ref.journal_entries(batch, d):
            if e["outcome"] == COMMITTED:
                allowed |= 1 << alg.rules[e["rule"]].mark
        marks = 0
        for x in ref.read_stream(batch, d):
            marks |= x.marks
        assert marks & ~allowed == 0


@settings(max_examples=40)
@given(algorithms(), documents)
def test_bids_stay_within_reach_and_their_keys_are_unique(alg, docs):
    for tokens in docs:
        stream = ref.widen(tokens, alg)
        bids = ref.bids_of(alg, DEFAULT_CAPACITIES, stream)
        assert len({b.key for b in bids}) == len(bids) and all(b.key > 0 for b in bids)
        for b in bids:
            m = b.match
            assert m.anchor == m.first[0]
            assert all(f <= q for f, q in zip(m.first, m.last))
            assert all(q < f for q, f in zip(m.last, m.first[1:]))
            assert m.last[-1] <= m.end <= m.anchor + alg.reach
            assert m.end < len(stream)
        assert abs(ref.potential(bids)) < 2**31


@settings(max_examples=40)
@given(algorithms(), documents)
def test_winners_do_not_interfere_and_beat_every_candidate_they_interfere_with(alg, docs):
    for tokens in docs:
        stream = ref.widen(tokens, alg)
        cand = ref.candidates(ref.bids_of(alg, DEFAULT_CAPACITIES, stream), [0] * len(alg.rules))
        wins = ref.winners(alg, cand, len(stream))
        for a, b in itertools.combinations(wins, 2):
            assert not ref.interfere(alg, a.match, b.match, len(stream))
            if alg.rules[a.rule].kind == "merge" or alg.rules[b.rule].kind == "merge":
                assert a.end < b.anchor  # a merge interferes with every bid it overlaps
        if cand:  # the largest key overall always wins
            assert max(cand.values(), key=lambda b: b.key) in wins


@settings(max_examples=30)
@given(algorithms(), documents)
def test_reverted_winners_inhibit_their_rule(alg, docs):
    """After a revert at step t, the rule wins nowhere in steps t+1 .. t+inhibit_steps."""
    batch, _ = annealed(alg, docs, DEFAULT_CAPACITIES)
    for d in range(batch.n):
        journal = ref.journal_entries(batch, d)
        for e in journal:
            if e["outcome"] == REVERTED:
                held = range(e["step"] + 1, e["step"] + alg.params.inhibit_steps + 1)
                assert not [f for f in journal if f["rule"] == e["rule"] and f["step"] in held]
