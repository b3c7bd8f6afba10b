"""Timelines rebuilt from the public engine API agree with the engine's own journal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tiny import make_view_example
from viewer_helpers import PARAMS, TEXT

from sae import Engine
from sae.layout import COMMITTED, Capacities
from sae.viewer.model import (
    BID_COMMITTED,
    BID_INHIBITED,
    BID_REVERTED,
    build_timeline,
    changed_items,
    compare_timelines,
    decode_bids,
    health_commits,
)

TEXTS = [TEXT, "new york city players", "the dog is not happy !", "a cat eats food", "", "1 2 1 2 1 2"]


@pytest.mark.parametrize("tolerance", [0, 260, 1 << 20])
@pytest.mark.parametrize("text", TEXTS)
def test_timeline_matches_the_engine(text, tolerance):
    engine = Engine(replace(make_view_example(), params=replace(PARAMS, tolerance=tolerance)), backend="cpu",
                    batch_size=1)
    tl = build_timeline(engine, text)
    x = engine.explain(text)
    assert tl.steps[0].stream.tobytes() == x.initial.tobytes()
    assert tl.steps[-1].stream.tobytes() == x.final.tobytes()
    assert [a.fields["step"] for s in tl.steps for a in s.attempts] == x.journal["step"].tolist()
    for step in tl.steps:
        assert len(step.labels) == step.length
        for a in step.attempts:
            # P0 is the sum of the scores of every bid of the stream the step started with.
            assert a.fields["potential_before"] == step.bids.potential
            # The journal's outcome is the health test the viewer explains.
            assert a.predicted == a.committed
            assert a.rule not in step.inhibited  # an inhibited rule never wins
            assert a.anchor < step.length
            assert any((step.bids.anchor == a.anchor) & (step.bids.rule == a.rule))
        # A step that committed nothing leaves the stream as it was.
        if step.index < tl.n_steps and not any(a.committed for a in step.attempts):
            assert tl.steps[step.index + 1].stream.tobytes() == step.stream.tobytes()


def test_timeline_has_a_merge_and_a_revert(view_alg):
    tl = build_timeline(Engine(view_alg, backend="cpu", batch_size=1), TEXT)
    committed, reverted = tl.counts()
    assert committed and reverted
    lengths = [s.length for s in tl.steps]
    assert lengths[-1] < lengths[0]  # a merge shortened the row
    merged = [s for s in tl.steps if "new+york+city" in s.labels]
    assert merged and merged[0].changed[merged[0].labels.index("new+york+city")]
    statuses = set(np.concatenate([s.bid_status for s in tl.steps]).tolist())
    assert {BID_COMMITTED, BID_REVERTED, BID_INHIBITED} <= statuses


def test_health_test_and_bid_keys():
    assert health_commits(40, 40, 0) and not health_commits(41, 40, 0) and health_commits(300, 40, 260)
    packing = Capacities().keys
    keys = np.zeros((4, 3), dtype=np.uint32)
    keys[2, 1] = packing.pack(150, 2, 1)
    keys[0, 2] = packing.pack(40, 0, 2)
    bids = decode_bids(keys, packing)
    assert bids.anchor.tolist() == [0, 2] and bids.rule.tolist() == [2, 1] and bids.score.tolist() == [40, 150]
    assert bids.potential == 190 and bids.at(2).tolist() == [1]
    assert decode_bids(keys, packing, guards=frozenset({2})).potential == 110  # a guard counts against


def test_bid_rank_orders_each_anchor_best_first(view_alg):
    tl = build_timeline(Engine(view_alg, backend="cpu", batch_size=1), TEXT)
    for step in tl.steps:
        for anchor in range(step.length):
            order = step.bids.at(anchor)
            assert step.bid_rank[order].tolist() == list(range(order.size))
            assert step.bids_per_anchor[anchor] == order.size


def test_changed_items_follow_original_positions(view_alg):
    engine = Engine(view_alg, backend="cpu", batch_size=1)
    x = engine.explain(TEXT)
    assert not changed_items(x.initial, None).any()
    assert not changed_items(x.initial, x.initial).any()
    moved = x.initial[[1, 0, *range(2, x.initial.size)]]
    assert changed_items(moved, x.initial).tolist()[:3] == [True, True, False]
    assert changed_items(x.final, x.initial).any()


def test_compare_flags_the_differing_cells(view_alg):
    engine = Engine(view_alg, backend="cpu", batch_size=1)
    a = build_timeline(engine, TEXT)
    b = build_timeline(engine, TEXT)
    assert compare_timelines(a, b).count == 0
    b.steps[1].stream = b.steps[1].stream.copy()
    b.steps[1].stream["arg1"][2] += 1
    mismatch = compare_timelines(a, b)
    assert mismatch.steps[1].items.tolist().count(True) == 1 and mismatch.steps[1].items[2]
    assert mismatch.count == 1
    b.steps[2].stream = b.steps[2].stream[:-1]
    assert compare_timelines(a, b).steps[2].items[-1]  # an item only one side has


def test_committed_outcome_constant_is_the_journal_s():
    assert COMMITTED == 1
