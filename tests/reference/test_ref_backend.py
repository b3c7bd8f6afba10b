"""ReferenceBackend over a ProgramBatch: widening (§1), the bytes it writes, the Backend protocol."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import ids, make_tiny

from sae import reference as ref
from sae.batch import ProgramBatch
from sae.layout import DEFAULT_CAPACITIES, PROGRAM_ITEM, Capacities

CAPS = DEFAULT_CAPACITIES
DOCS = ["the new york city is big", "", "not a good dog , the cat is playing !", "cat"]


def batch_of(alg, docs: list[list[int]], caps: Capacities = CAPS) -> ProgramBatch:
    batch = ProgramBatch(max(len(docs), 1), caps)
    batch.widen(docs, alg.symbol_rows)
    return batch


def test_widen_makes_one_acc_item_per_token_like_the_batch():
    alg = make_tiny()
    docs = [alg.tokenizer.encode(t, add_special_tokens=False).ids for t in DOCS]
    batch = batch_of(alg, docs)
    for d, tokens in enumerate(docs):
        assert ref.read_stream(batch, d) == ref.widen(tokens, alg)
    first = ref.widen(docs[0], alg)[0]
    assert vars(first) == dict(symbol=2, token=2, pos=0, span=1, opcode=1, arg0=2, arg1=65536, mod=0, marks=0)


def test_a_reused_batch_is_widened_afresh():
    alg = make_tiny()
    batch = batch_of(alg, [ids("new york city the cat is big")] * 2)
    ref.ReferenceBackend(alg, CAPS).anneal(batch)
    assert batch.items["marks"].any()
    batch.widen([ids("cat the dog")], alg.symbol_rows)
    assert ref.read_stream(batch, 0) == ref.widen(ids("cat the dog"), alg)
    assert not batch.items.view(np.uint32)[0, 3 * len(PROGRAM_ITEM.names):].any()
    assert not batch.items[1].view(np.uint32).any()


def test_anneal_writes_streams_with_zero_tails_and_journals():
    alg = make_tiny()
    docs = [alg.tokenizer.encode(t, add_special_tokens=False).ids for t in DOCS]
    batch = batch_of(alg, docs)
    ref.ReferenceBackend(alg, CAPS).anneal(batch)
    for d, tokens in enumerate(docs):
        stream, journal, _ = ref.anneal_document(alg, CAPS, ref.widen(tokens, alg))
        assert ref.read_stream(batch, d) == stream
        assert int(batch.lengths[d]) == len(stream)
        assert not batch.items[d, len(stream):].view(np.uint32).any()
        assert ref.journal_entries(batch, d) == journal
        assert not batch.journal[d, len(journal):].view(np.uint32).any()
    assert batch.lengths[0] < len(docs[0])  # something merged


def test_anneal_appends_after_the_journals_length():
    alg = make_tiny()
    batch = batch_of(alg, [ids("the cat")], Capacities(journal=3))
    batch.journal_len[0] = 2  # two entries already: room for one
    ref.ReferenceBackend(alg, Capacities(journal=3)).anneal(batch)
    assert batch.journal_len[0] == 3
    assert batch.journal[0, 2]["rank"] == 0 and batch.journal[0, 2]["step"] == 0


def test_bids_are_keys_by_document_anchor_and_rule():
    alg = make_tiny()
    batch = batch_of(alg, [ids("the new york"), [], ids("cat")])
    keys = ref.ReferenceBackend(alg, CAPS).bids(batch)
    assert keys.shape == (3, CAPS.stream, len(alg.rules)) and keys.dtype == np.uint32
    for d in range(3):
        want = {(b.anchor, b.rule): b.key for b in ref.bids_of(alg, CAPS, ref.read_stream(batch, d))}
        got = {(int(p), int(r)): int(keys[d, p, r]) for p, r in zip(*np.nonzero(keys[d]))}
        assert got == want
    assert keys[0, 1, 1] == CAPS.keys.pack(220, 1, 1)  # merge2 "new york" with its phrase bonus


def test_the_backend_protocol():
    from sae.backend import Backend

    backend: Backend = ref.ReferenceBackend(make_tiny(), CAPS)
    assert (backend.name, backend.profiler, backend.concurrent_batches) == ("reference", None, True)
    assert backend.description
    with pytest.raises(ValueError, match="rules exceed"):
        ref.ReferenceBackend(make_tiny(), Capacities(rules=2))


def test_an_empty_batch():
    alg = make_tiny()
    batch = batch_of(alg, [])
    backend = ref.ReferenceBackend(alg, CAPS)
    assert backend.bids(batch).shape == (0, CAPS.stream, len(alg.rules))
    backend.anneal(batch)
    assert backend.execute(batch).shape == (0, alg.dim)
