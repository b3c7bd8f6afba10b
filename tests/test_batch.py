"""ProgramBatch reuse: a batch widened after others holds exactly what a fresh one would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import make_tiny

from sae.batch import ProgramBatch
from sae.cpu import CpuBackend
from sae.layout import DEFAULT_CAPACITIES

ALG = make_tiny()
BACKEND = CpuBackend(ALG, DEFAULT_CAPACITIES)
docs = st.lists(st.lists(st.integers(0, ALG.vocab_size - 1), max_size=20), max_size=6)


@settings(max_examples=60)
@given(st.lists(docs, min_size=1, max_size=4))
def test_reused_batch_equals_a_fresh_one(batches):
    reused = ProgramBatch(6, DEFAULT_CAPACITIES)
    for token_ids in batches:
        reused.widen(token_ids, ALG.symbol_rows)
        fresh = ProgramBatch(6, DEFAULT_CAPACITIES)
        fresh.widen(token_ids, ALG.symbol_rows)
        assert reused.items.tobytes() == fresh.items.tobytes()
        assert reused.journal.tobytes() == fresh.journal.tobytes()
        assert (reused.lengths[: reused.n] == fresh.lengths[: fresh.n]).all()
        BACKEND.anneal(reused)  # leaves merged streams and journal entries behind


@settings(max_examples=40)
@given(docs)
def test_token_ids_as_arrays_load_as_lists_do(token_ids):
    # A worker process hands the engine numpy arrays (its shared batch), the service lists.
    import numpy as np

    from_lists, from_arrays = ProgramBatch(6, DEFAULT_CAPACITIES), ProgramBatch(6, DEFAULT_CAPACITIES)
    from_lists.widen(token_ids, ALG.symbol_rows)
    from_arrays.widen([np.array(ids, dtype=np.uint32) for ids in token_ids], ALG.symbol_rows)
    assert from_arrays.items.tobytes() == from_lists.items.tobytes()
    assert (from_arrays.lengths == from_lists.lengths).all()
