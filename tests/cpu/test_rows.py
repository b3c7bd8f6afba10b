"""Packed rows (sae.cpu.rows): several documents end to end in one row of the annealer's planes."""

from __future__ import annotations

import numpy as np
from equivalence import TEXTS, assert_backends_agree, widened
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, token_streams
from tiny import ids, make_tiny, parse

from sae.algorithm import LoopParams, load_algorithm
from sae.cpu import CpuBackend
from sae.cpu.rows import SEPARATOR, Rows
from sae.layout import DEFAULT_CAPACITIES, item_words
from sae.reference import ReferenceBackend

CAPS = DEFAULT_CAPACITIES


def backend(alg, packing: float, caps=CAPS) -> CpuBackend:
    cpu = CpuBackend(alg, caps)
    cpu.annealer.packing = packing
    return cpu


def test_documents_are_placed_next_fit_with_empty_items_between():
    alg = make_tiny()
    batch = widened(alg, [[5] * 3, [], [6] * 2, [7] * 5, [8], [9], [10]], CAPS)
    rows = Rows.of(batch, pack_when=1.0)
    # width 5; the empty document owns no item; each row takes documents until the next does not fit
    assert SEPARATOR == 1 and rows.packed and rows.width == 5 and rows.count == 4
    assert rows.row_of.tolist() == [0, 0, 1, 2, 3, 3, 3]
    assert rows.start.tolist() == [0, 3, 0, 0, 0, 2, 4]
    assert rows.doc_at.tolist() == [[0, 0, 0, 1, 1], [2] * 5, [3] * 5, [4, 4, 5, 5, 6]]
    symbols = rows.words[..., 0]
    assert symbols[0].tolist() == [5, 5, 5, 0, 0] and symbols[3].tolist() == [8, 0, 9, 0, 10]
    assert rows.docs_in(np.array([0, 3])).tolist() == [0, 1, 4, 5, 6]
    first, last = rows.bounds(np.array([3]))
    assert first.tolist() == [[0, 0, 2, 2, 4]] and last.tolist() == [[0, 0, 2, 2, 4]]
    at = np.arange(rows.count * rows.width).reshape(rows.count, rows.width)
    assert rows.doc_sums(at).tolist() == [0 + 1 + 2, 3 + 4, 5 + 6 + 7 + 8 + 9, sum(range(10, 15)), 15 + 16, 17 + 18,
                                          19]
    assert rows.doc_sums(at[[3]], np.array([3])).tolist() == [15 + 16, 17 + 18, 19]


def test_batches_that_would_not_shrink_enough_stay_one_document_a_row():
    alg = make_tiny()
    batch = widened(alg, [[5] * 4, [6] * 4, [7] * 5], CAPS)
    rows = Rows.of(batch)
    assert not rows.packed and rows.count == 3
    assert np.shares_memory(rows.words, batch.items)  # no copy: the batch's own items


def test_unpacking_gives_back_the_batch_and_closing_up_moves_the_documents_after():
    alg = make_tiny()
    docs = [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 15]]
    batch = widened(alg, docs, CAPS)
    before = batch.items.copy()
    rows = Rows.of(batch, pack_when=1.0)
    assert rows.row_of.tolist() == [0, 0, 1]
    dead = np.zeros((rows.count, rows.width), dtype=bool)
    dead[0, 1] = True  # the second item of document 0
    # What apply_winners's compaction does to the row: close up over the dead item.
    words = rows.words
    words[0] = np.concatenate([words[0, [0, 2, 3, 4, 5]], np.zeros((1, words.shape[2]), np.uint32)])
    rows.removed(dead)
    assert rows.length.tolist() == [2, 2, 6] and rows.start.tolist() == [0, 3, 0]
    assert rows.doc_at[0].tolist() == [0, 0, 0, 1, 1, 1]
    rows.unpack(batch)
    assert batch.lengths[:3].tolist() == [2, 2, 6]
    words = item_words(batch.items)
    assert words[0, :3, 0].tolist() == [5, 7, 0]
    assert (batch.items[1:3] == before[1:3]).all()


def test_a_gap_does_not_reach_into_the_next_document():
    """``cat ~2 dog``: packed, "a cat" and "dog a" share a row one empty item apart, within
    the gap's reach; the match stops at the end of the stream instead."""
    alg = make_tiny(rules=parse('rule r score 9: [sym="cat"] ~2 [sym="dog"] => set 0 op=NOP\n'))
    docs = [ids("a cat"), ids("dog a"), ids("the cat is a dog and the man eats")]
    cpu = backend(alg, 1.0)
    packed = Rows.of(widened(alg, docs, CAPS), 1.0)
    assert packed.row_of.tolist() == [0, 0, 1] and packed.start.tolist() == [0, 3, 0]  # the first two share a row
    batch, _ = assert_backends_agree(cpu, ReferenceBackend(alg, CAPS), alg, docs)
    assert batch.journal_len[:3].tolist() == [0, 0, 1]


def test_anchors_runs_and_merges_see_their_own_document():
    rules = ('rule s score 9: [^ &stop] => set 0 mod=1\nrule e score 8: [!word $] => set 0 op=NOP\n'
             'rule run score 7 mark 2: [sym="not"] [word]+3 => set 1 scale=0.5\n'
             'rule m score 300: [word] [] => merge\n')
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=8, tolerance=0, inhibit_steps=2),
                    transforms=2)
    texts = [", new york", "the cat", *TEXTS, "the", "not good"]
    docs = [e.ids for e in alg.tokenizer.encode_batch(texts, add_special_tokens=False)]
    # The first row holds three documents, and "new york" merges in the first of them,
    # so the two after it move left within the row.
    assert Rows.of(widened(alg, docs, CAPS), 1.0).row_of[:4].tolist() == [0, 0, 0, 1]
    batch, _ = assert_backends_agree(backend(alg, 1.0), ReferenceBackend(alg, CAPS), alg, docs)
    assert batch.lengths[0] == 2


def test_the_default_anneals_the_same_bytes_packed_or_not():
    alg = load_algorithm()
    rng = np.random.default_rng(3)
    docs = [rng.integers(1000, 20000, size=int(n)).tolist() for n in rng.integers(0, 40, size=60)]
    a, b = widened(alg, docs, CAPS), widened(alg, docs, CAPS)
    backend(alg, 1.0).anneal(a)
    backend(alg, 0.0).anneal(b)
    assert a.stats == b.stats and a.stats.committed > 0
    for field in ("items", "lengths", "journal", "journal_len"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), field


@settings(max_examples=100)
@given(algorithms(), st.lists(token_streams(24), max_size=8))
def test_random_algorithms_agree_with_the_reference_packed(alg, docs):
    assert_backends_agree(backend(alg, 1.0), ReferenceBackend(alg, CAPS), alg, docs)
