"""Invariants of the annealing loop on the numpy path (hypothesis)."""

from __future__ import annotations

import tracemalloc
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import CLASSES, WORDS, make_tiny

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
from sae.batch import ProgramBatch
from sae.cpu import CpuBackend
from sae.cpu.anneal import Annealer, replay
from sae.layout import ANY, COMMITTED, DEFAULT_CAPACITIES, Op

CAPS = DEFAULT_CAPACITIES
N_SYMBOLS = len(WORDS) + 5

element = st.builds(
    PatternElement,
    gap=st.integers(0, 2),
    opcode=st.sampled_from([ANY, int(Op.ACC), int(Op.NOP), int(Op.PUSH)]),
    symbol=st.sampled_from([ANY, ANY, ANY, 2, 7, 8, 14]),
    classes=st.lists(st.sampled_from(CLASSES), max_size=2, unique=True).map(tuple),
)


@st.composite
def rule(draw, name: str, reorder_only: bool = False):
    k = draw(st.integers(1, 3))
    els = draw(st.lists(element, min_size=k, max_size=k))
    els[0] = PatternElement(0, els[0].opcode, els[0].symbol, els[0].classes)
    score = draw(st.integers(1, 400))
    if not reorder_only and k >= 2 and draw(st.integers(0, 3)) == 0:
        merge_els = [PatternElement(0, e.opcode, e.symbol, e.classes) for e in els]
        return Rule(name, score, tuple(merge_els), kind="merge")
    perm = tuple(draw(st.permutations(range(k))))
    updates = ()
    if not reorder_only:
        updates = tuple(
            draw(st.lists(st.builds(ItemUpdate,
                                    opcode=st.none() | st.sampled_from(list(map(int, Op))),
                                    arg1=st.none() | st.integers(-65536, 131072)),
                          max_size=k))
        )
    return Rule(name, score, tuple(els), "rewrite", perm, updates)


@st.composite
def algorithms(draw, reorder_only: bool = False):
    n = draw(st.integers(1, 6))
    rules = tuple(draw(rule(f"r{i}", reorder_only)) for i in range(n))
    params = LoopParams(
        max_steps=draw(st.integers(0, 12)),
        tolerance=draw(st.sampled_from([0, 50, 1000, 10**6])),
        inhibit_steps=draw(st.integers(0, 4)),
    )
    return make_tiny(rules=rules, params=params)


texts = st.lists(
    st.lists(st.sampled_from(WORDS[2:]), max_size=24).map(" ".join), min_size=1, max_size=6
)


@pytest.fixture(autouse=True)
def _verify_incremental_bids(monkeypatch):
    """Every incremental bid update in these tests is checked against a full recount."""
    monkeypatch.setattr(Annealer, "verify_incremental", True)


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
def test_the_loop_ends_within_max_steps(alg, batch_texts):
    _, batch, _ = run(alg, batch_texts)
    for d in range(batch.n):
        journal = batch.journal[d, : batch.journal_len[d]]
        assert len(journal) <= 2 * alg.params.max_steps
        assert (journal["step"] < max(alg.params.max_steps, 1)).all()
        # At most one commit per step, and a next-best attempt only after a revert.
        for step in np.unique(journal["step"]):
            at = journal[journal["step"] == step]
            assert (at["outcome"] == COMMITTED).sum() <= 1
            if len(at) == 2:
                assert at[0]["outcome"] != COMMITTED and at[0]["rule"] != at[1]["rule"]


@settings(max_examples=25)
@given(algorithms(), texts)
def test_same_input_twice_gives_the_same_bytes(alg, batch_texts):
    _, a, _ = run(alg, batch_texts)
    backend, b, _ = run(alg, batch_texts)
    assert a.items.tobytes() == b.items.tobytes()
    assert a.journal.tobytes() == b.journal.tobytes()
    assert backend.execute(a).tobytes() == backend.execute(b).tobytes()


def test_scratch_buffers_are_allocated_once_and_steps_do_not_grow_memory():
    """Buffers live across batches; extra steps add no retained or peak memory.

    numpy makes short-lived temporaries inside a step; what must hold is that
    nothing accumulates per step: the peak for 64 steps equals the peak for 4.
    """
    sentence = "the new york city player ##s not very big , a cat eats food . " * 3
    texts = [sentence] * 32

    def measure(max_steps: int):
        alg = make_tiny(params=LoopParams(max_steps=max_steps, tolerance=10**6, inhibit_steps=1))
        backend = CpuBackend(alg, CAPS)
        batch = ProgramBatch(len(texts), CAPS)
        ids = [e.ids for e in alg.tokenizer.encode_batch(texts, add_special_tokens=False)]
        batch.widen(ids, alg.symbol_rows)
        backend.anneal(batch)  # warm-up: scratch buffers are sized here
        scratch = backend.annealer._backup
        batch.widen(ids, alg.symbol_rows)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        backend.anneal(batch)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert backend.annealer._backup is scratch
        steps = int(batch.journal["step"][:, : batch.journal_len.max()].max()) + 1
        return current - base, peak - base, steps

    retained_short, peak_short, steps_short = measure(4)
    retained_long, peak_long, steps_long = measure(64)
    assert steps_long > 4 * steps_short  # the long run really does more steps
    assert retained_long <= 4096 and retained_short <= 4096
    assert peak_long <= peak_short * 1.1 + 4096
