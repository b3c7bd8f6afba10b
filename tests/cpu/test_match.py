"""Matching details of the numpy path."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, texts
from tiny import make_tiny

from sae.batch import ProgramBatch
from sae.cpu.match import Matcher
from sae.layout import DEFAULT_CAPACITIES, item_words

TEXTS = ["new york city players runs playing", "play play ##er ##s new new york", "run ##s , a cat"]


def test_packed_and_byte_lexicon_keys_find_the_same_phrases():
    alg = make_tiny()
    batch = ProgramBatch(len(TEXTS), DEFAULT_CAPACITIES)
    batch.widen([e.ids for e in alg.tokenizer.encode_batch(TEXTS, add_special_tokens=False)], alg.symbol_rows)
    words = item_words(batch.items)[:, : batch.max_length()]
    packed = Matcher(alg, DEFAULT_CAPACITIES)
    assert packed._packed
    as_bytes = Matcher(alg, DEFAULT_CAPACITIES)
    as_bytes._packed = False
    as_bytes.lexicon = as_bytes._as_bytes(alg.lexicon_keys(DEFAULT_CAPACITIES))
    a = packed.bids(packed.view(words, batch.lengths))
    b = as_bytes.bids(as_bytes.view(words, batch.lengths))
    assert (a == b).all()
    assert packed.keys.score(a).max() >= 300  # merges with a phrase bonus were found
    # Both orders agree with the lexicon table's own order.
    assert (np.diff(packed.lexicon.astype(np.float64)) > 0).all()


@settings(max_examples=60)
@given(algorithms(), texts)
def test_the_bid_pass_agrees_with_matching_each_anchor_alone(alg, batch_texts):
    """The bid pass slides whole test planes; matching one gathered anchor at a time is the plain reading of §2."""
    batch = ProgramBatch(len(batch_texts), DEFAULT_CAPACITIES)
    batch.widen([e.ids for e in alg.tokenizer.encode_batch(batch_texts, add_special_tokens=False)], alg.symbol_rows)
    length = max(batch.max_length(), 1)
    words = item_words(batch.items)[: batch.n, :length]
    m = Matcher(alg, DEFAULT_CAPACITIES)
    v = m.view(words, batch.lengths[: batch.n])
    keys = m.bids(v)
    for r in range(m.n_rules):
        for p in range(length):
            one = m.match(v, np.full((batch.n, 1), p, dtype=np.int64), r)
            score = np.broadcast_to(one.score, one.ok.shape)[:, 0]
            want = np.where(one.ok[:, 0], m.keys.pack(score, np.full_like(score, p), np.full_like(score, r)), 0)
            assert (keys[r, :, p] == want).all()


@settings(max_examples=200)
@given(st.lists(st.integers(-(1 << 24), 1 << 24), min_size=1, max_size=20),
       st.integers(-(1 << 22), 1 << 22))
def test_scale_is_exact_integer_arithmetic_rounding_toward_zero(arg1, scale):
    from sae.cpu.rewrite import scale_q16
    from sae.layout import ARG1_LIMIT

    got = scale_q16(np.array(arg1, dtype=np.int32), scale).tolist()
    for a, g in zip(arg1, got):
        exact = abs(a * scale) // 65536 * (1 if a * scale >= 0 else -1)
        assert g == max(-ARG1_LIMIT, min(ARG1_LIMIT, exact))


@given(st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=1, max_size=4), st.integers(1, 8))
def test_run_lengths_count_consecutive_passes_up_to_the_cap(rows, cap):
    from sae.cpu.match import run_lengths

    width = max(map(len, rows))
    test = np.array([r + [False] * (width - len(r)) for r in rows])
    got = run_lengths(test, cap)
    for d, row in enumerate(test):
        for j in range(width):
            n = 0
            while j + n < width and row[j + n] and n < cap:
                n += 1
            assert got[d, j] == n
