"""Matching details of the numpy path."""

import numpy as np
from hypothesis import given, settings
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
    assert (a >> 16).max() >= 300  # merges with a phrase bonus were found
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
            want = np.where(one.ok[:, 0], (np.broadcast_to(one.score, one.ok.shape)[:, 0] << 16) | (0xFFFF - (p << 5 | r)), 0)
            assert (keys[r, :, p] == want).all()
