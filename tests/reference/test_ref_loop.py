"""The reference's annealing loop (docs/ENGINE.md §3): candidates, winners, health, inhibition,
the journal and replay, on hand-computed cases."""

from __future__ import annotations

from tiny import ids, make_tiny, parse

from sae import reference as ref
from sae.algorithm import LoopParams
from sae.batch import AnnealStats, ProgramBatch
from sae.layout import COMMITTED, DEFAULT_CAPACITIES, Q16_ONE, REVERTED, TOLERANCE_MAX, Capacities, Op

CAPS = DEFAULT_CAPACITIES
C, R = COMMITTED, REVERTED


def run(rules: str, words: str, caps: Capacities = CAPS, transforms: int = 0, **loop):
    """Anneal one document: (final stream, journal as (step, rank, rule, pos, score, before, after, outcome), live steps)."""
    params = LoopParams(**{"max_steps": 8, "tolerance": 0, "inhibit_steps": 2, **loop})
    alg = make_tiny(rules=parse(rules), params=params, transforms=transforms)
    stream, journal, live = ref.anneal_document(alg, caps, ref.widen(ids(words), alg))
    rows = [tuple(e[k] for k in ("step", "rank", "rule", "pos", "score", "potential_before", "potential_after",
                                 "outcome")) for e in journal]
    return stream, rows, live


# -- candidates and winners -----------------------------------------------------------------------


def bid(anchor: int, end: int, key: int, kind: str = "rewrite", rule: int = 0) -> ref.Bid:
    return ref.Bid(ref.Match(rule, anchor, (anchor,), (end,), end, None), kind, key, key)


def test_a_candidate_is_the_best_key_at_its_anchor_of_a_rule_not_inhibited_and_no_guard():
    bids = [bid(0, 0, 5, rule=0), bid(0, 1, 9, rule=1), bid(0, 0, 50, "guard", rule=2), bid(2, 2, 3, rule=0)]
    cand = ref.candidates(bids, inhibit=[0, 0, 0])
    assert {p: b.key for p, b in cand.items()} == {0: 9, 2: 3}
    cand = ref.candidates(bids, inhibit=[0, 1, 0])  # rule 1 inhibited: the next best at anchor 0
    assert {p: b.key for p, b in cand.items()} == {0: 5, 2: 3}
    assert ref.candidates(bids, inhibit=[3, 1, 0]) == {}


def test_a_candidate_wins_unless_an_interfering_one_has_a_larger_key():
    # Rule 0 tests and sets the opcode of two items, so overlapping bids of it interfere.
    alg = make_tiny(rules=parse("rule r score 5: [op=ACC] [op=ACC] => set 0 op=NOP; set 1 op=NOP"))

    def pair(anchor: int, key: int) -> ref.Bid:
        return ref.Bid(ref.Match(0, anchor, (anchor, anchor + 1), (anchor, anchor + 1), anchor + 1, None),
                       "rewrite", key, key)

    # 1 beats 0 and 2; 2 still loses to 1, which lost too (no cascade); 4 overlaps nothing.
    cand = {0: pair(0, 9), 1: pair(1, 8), 2: pair(2, 7), 4: pair(4, 1)}
    assert [w.anchor for w in ref.winners(alg, cand, 8)] == [0, 4]
    cand = {0: pair(0, 5), 1: pair(1, 8), 2: pair(2, 7), 4: pair(4, 1), 5: pair(5, 2)}
    assert [w.anchor for w in ref.winners(alg, cand, 8)] == [1, 5]


def test_overlapping_bids_that_do_not_interfere_both_win():
    # a scales the weight of the item before a negation; b sets the transform of the items
    # after it: both examine "not" for its symbol only, neither writes what the other examines.
    rules = ('rule a score 50: [word] [neg] => set 0 scale=0.5\n'
             'rule b score 60: [neg] [word]+3 => set 1 mod=1')
    stream, journal, _ = run(rules, "cat not big red", transforms=1)
    assert [(step, rule, pos) for step, _, rule, pos, *_ in journal] == [(0, 0, 0), (0, 1, 1)]
    assert stream[0].arg1 == Q16_ONE // 2 and [x.mod for x in stream] == [0, 0, 1, 1]


def test_the_run_probe_makes_bids_interfere():
    rules = ('rule a score 50 mark 0: [sym="not"] [word !stop mod=0]+3 => set 1 scale=0.5\n'
             'rule b score 60 mark 1: [sym="."] => set 0 mod=1')
    # "." is examined (for its transform) by a's run, so a (extent [0, 2]) loses to b (anchored at 2),
    # which writes that transform, in step 0.
    stream, journal, _ = run(rules, "not good .", transforms=1)
    assert [(step, rule, pos) for step, _, rule, pos, *_ in journal] == [(0, 1, 2), (1, 0, 0)]
    assert [x.arg1 for x in stream] == [Q16_ONE, Q16_ONE // 2, Q16_ONE] and stream[2].mod == 1
    # A full run examines nothing more: both win in step 0.
    _, journal, _ = run(rules, "not good big red .", transforms=1)
    assert [(step, rule, pos) for step, _, rule, pos, *_ in journal] == [(0, 0, 0), (0, 1, 4)]


# -- steps and the journal ---------------------------------------------------------------------------


def test_journal_fields_of_the_tiny_rules():
    alg = make_tiny()
    stream, journal, live = ref.anneal_document(alg, CAPS, ref.widen(ids("the new york city is big"), alg))
    # Step 0 bids: soften the (40), swap x5 (20 each), merge2 new york (220), merge3 new york city (330), soften is
    # (40): P0 = 730. Winners: soften at 0, merge3 at 1 (beats every swap it overlaps), soften at 4 (beats the
    # swap at 3). Step 1: three swaps over "the [nyc] is big" (P0 60), the leftmost wins; step 2: one swap left.
    assert [tuple(e.values()) for e in journal] == [
        (0, 0, 3, 0, 40, 730, 730, C),
        (0, 1, 0, 1, 330, 730, 730, C),
        (0, 2, 3, 4, 40, 730, 730, C),
        (1, 0, 5, 0, 20, 60, 60, C),
        (2, 0, 5, 2, 20, 20, 20, C),
    ]
    assert list(journal[0]) == ["step", "rank", "rule", "pos", "score", "potential_before", "potential_after", "outcome"]
    assert [x.symbol for x in stream] == [alg.vocab_size + 3, 2, 21, 8]  # [nyc] the big is
    assert live == 3  # finished at the start of step 3


def test_a_full_journal_drops_the_last_winners_and_the_document_idles():
    alg = make_tiny(params=LoopParams(max_steps=6, tolerance=0, inhibit_steps=2))
    stream, journal, live = ref.anneal_document(alg, Capacities(journal=2), ref.widen(ids("the new york city is"), alg))
    assert [(e["step"], e["rank"], e["pos"]) for e in journal] == [(0, 0, 0), (0, 1, 1)]
    # soften at 4 was dropped: not applied; then the document idles until max_steps, still live.
    assert [x.arg1 for x in stream] == [Q16_ONE // 4, Q16_ONE, Q16_ONE]
    assert live == 6
    # With room for exactly the step's winners, the next step finds the journal full.
    _, journal, _ = ref.anneal_document(alg, Capacities(journal=3), ref.widen(ids("the new york city is"), alg),
                                        journal_len=1)
    assert [e["rank"] for e in journal] == [0, 1]


def test_a_document_without_rewrite_or_merge_bids_is_finished():
    _, journal, live = run('rule g score 5: [word] => guard\nrule r score 1: [sym="dog"] => keep', "cat the")
    assert (journal, live) == ([], 0)
    assert run("rule r score 1: [word] => keep", "")[1:] == ([], 0)


def test_the_loop_ends_after_max_steps():
    rules = "rule swap score 20: [word] [word] => perm 1 0"
    _, journal, live = run(rules, "cat dog " * 6, max_steps=3)
    assert live == 3 and {e[0] for e in journal} == {0, 1, 2}
    assert run(rules, "cat dog", max_steps=0)[1:] == ([], 0)


# -- health ------------------------------------------------------------------------------------------

SILENCE = 'rule silence score 10 mark 0: [sym="cat"] => set 0 op=NOP\nrule no_nop score 50: [op=NOP] => guard'


def test_a_winner_that_creates_a_heavier_guard_is_reverted_and_inhibited():
    # S: silence (10); S_w: the guard at 0 (-50) and nothing else: δ = 0 - (-50) = 50 > 10 + 0.
    stream, journal, live = run(SILENCE, "cat dog", max_steps=4, inhibit_steps=2)
    assert journal == [(0, 0, 0, 0, 10, 10, -40, R), (3, 0, 0, 0, 10, 10, -40, R)]  # inhibited in steps 1, 2
    assert stream[0].opcode == Op.ACC and live == 4  # idle, not finished
    assert [e[0] for e in run(SILENCE, "cat dog", max_steps=4, inhibit_steps=1)[1]] == [0, 2]
    assert [e[0] for e in run(SILENCE, "cat dog", max_steps=4, inhibit_steps=0)[1]] == [0, 1, 2, 3]


def test_tolerance_decides_at_the_boundary():
    assert run(SILENCE, "cat", tolerance=39)[1][0][-1] == R
    stream, journal, live = run(SILENCE, "cat", tolerance=40)  # δ = 50 <= 10 + 40
    assert journal == [(0, 0, 0, 0, 10, 10, -40, C)]
    assert stream[0].opcode == Op.NOP and live == 1  # then only the guard bids: finished
    assert run(SILENCE, "cat", tolerance=TOLERANCE_MAX)[1] == [(0, 0, 0, 0, 10, 10, -40, C)]


def test_after_a_revert_the_next_best_bid_at_that_place_wins():
    rules = SILENCE + '\nrule halve score 5 mark 1: [sym="cat"] => set 0 scale=0.5'
    stream, journal, _ = run(rules, "cat dog", max_steps=4, inhibit_steps=2)
    # Step 0: silence; S_w holds the guard (-50) and halve (+5): δ = 45 > 10. P0 = 10 + 5.
    # Step 1: silence inhibited, halve wins; S_w holds silence (+10): δ = -10, committed.
    # Step 2: silence still inhibited; step 3: silence again, reverted.
    assert journal == [(0, 0, 0, 0, 10, 15, -30, R), (1, 0, 2, 0, 5, 15, 25, C), (3, 0, 0, 0, 10, 10, -40, R)]
    assert (stream[0].opcode, stream[0].arg1) == (Op.ACC, Q16_ONE // 2)


def test_a_winner_is_not_charged_for_the_alternatives_it_beat():
    # merge3 (330) beats three rewrites of 300 each; a guard elsewhere turns the check on.
    rules = ('rule m3 score 300: [word] [] [] => merge\nrule a score 300: [sym="new"] => keep\n'
             'rule b score 300: [sym="york"] => keep\nrule c score 300: [sym="city"] => keep\n'
             'rule g score 1: [sym="?"] => guard')
    stream, journal, _ = run(rules, "new york city")
    assert journal == [(0, 0, 0, 0, 330, 1230, 1230, C)]  # nothing touches the merged item: δ = 0
    assert len(stream) == 1


def test_a_winner_is_not_charged_for_what_another_winner_did():
    # Each silence alone creates no guard; both together do, and neither is charged for it.
    rules = ('rule w1 score 10 mark 1: [sym="cat"] => set 0 op=NOP\nrule w2 score 10 mark 2: [sym="dog"] => set 0 op=NOP\n'
             "rule g score 100: [op=NOP] ~2 [op=NOP] => guard")
    stream, journal, live = run(rules, "cat the dog")
    assert journal == [(0, 0, 0, 0, 10, 20, 20, C), (0, 1, 1, 2, 10, 20, 20, C)]
    assert [x.opcode for x in stream] == [Op.NOP, Op.ACC, Op.NOP] and live == 1


def test_a_winner_is_credited_for_the_guards_it_breaks_up():
    rules = ('rule swap score 5: [sym="cat"] [sym="dog"] => perm 1 0\n'
             'rule g score 50: [sym="cat"] [sym="dog"] => guard')
    stream, journal, _ = run(rules, "cat dog")
    assert journal == [(0, 0, 0, 0, 5, -45, 5, C)]  # δ = -50 - 0
    assert [x.pos for x in stream] == [1, 0]


def test_bids_the_rewrite_offers_lower_delta():
    # With a guard in the Algorithm, the bids touching the result count for the winner.
    rules = ('rule swap score 5 mark 0: [word] [word] => perm 1 0\nrule tag score 7 mark 1: [sym="dog"] [sym="cat"] => keep\n'
             'rule g score 1: [sym="?"] => guard')
    _, journal, _ = run(rules, "cat dog", max_steps=1)
    assert journal == [(0, 0, 0, 0, 5, 5, 12, C)]  # S_w offers tag (7): δ = -7


def test_without_guards_there_is_no_check():
    # The same offer without a guard rule: δ is 0, potential_after is P0.
    rules = 'rule swap score 5 mark 0: [word] [word] => perm 1 0\nrule tag score 7 mark 1: [sym="dog"] [sym="cat"] => keep'
    assert run(rules, "cat dog", max_steps=1)[1] == [(0, 0, 0, 0, 5, 5, 5, C)]


def test_the_merge_result_is_judged_on_its_own_item():
    # After a merge, bids of S_w touch it when their extent overlaps [p, z - (k-1)] = [p, p].
    rules = ('rule m2 score 200: [word] [] => merge\nrule g score 500: [sym="new"] [word] => guard\n'
             'rule lone score 30 mark 3: [word] => set 0 scale=0.5')
    # S: m2 at 0 (220), g at 0 (-500), lone at 0, 1, 2; S_w = [new york] city: lone at 0 (+30) touches [0, 0],
    # lone at 1 does not. δ = -500 - 30 = -530.
    _, journal, _ = run(rules, "new york city", max_steps=1)
    assert journal[0] == (0, 0, 0, 0, 220, 220 - 500 + 90, 220 - 500 + 90 + 530, C)


# -- replay -------------------------------------------------------------------------------------------


def test_replay_applies_each_steps_commits_right_to_left():
    alg = make_tiny(rules=parse("rule m2 score 200: [word] [] => merge\nrule m3 score 300: [word] [] [] => merge"))
    initial = ref.widen(ids("new york city new york"), alg)
    final, journal, _ = ref.anneal_document(alg, CAPS, initial)
    assert [(e["step"], e["pos"]) for e in journal] == [(0, 0), (0, 3)]
    assert ref.replay(alg, CAPS, initial, journal) == final
    # Left to right, the first merge would move the second one's anchor off the stream.
    after_first = ref.apply_bid(alg, initial, ref.match_at(alg, 1, initial, 0))
    assert ref.match_at(alg, 0, after_first, 3) is None


def test_replay_skips_reverted_entries():
    rules = SILENCE + '\nrule halve score 5 mark 1: [sym="cat"] => set 0 scale=0.5'
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=4, tolerance=0, inhibit_steps=2))
    initial = ref.widen(ids("cat dog cat"), alg)
    final, journal, _ = ref.anneal_document(alg, CAPS, initial)
    assert {e["outcome"] for e in journal} == {C, R}
    assert ref.replay(alg, CAPS, initial, journal) == final


# -- through a batch ----------------------------------------------------------------------------------


def test_backend_stats_count_live_steps_commits_and_reverts():
    alg = make_tiny(rules=parse(SILENCE + '\nrule halve score 5 mark 1: [sym="dog"] => set 0 scale=0.5'),
                    params=LoopParams(max_steps=5, tolerance=0, inhibit_steps=1))
    batch = ProgramBatch(3, CAPS)
    batch.widen([ids("dog"), ids("cat dog"), []], alg.symbol_rows)
    ref.ReferenceBackend(alg, CAPS).anneal(batch)
    # "dog": halve, then finished (live 1). "cat dog": silence reverted at 0, 2, 4; halve at 0: live 5.
    assert batch.stats == AnnealStats(steps=5, committed=2, reverted=3)
    assert batch.journal_len[:3].tolist() == [1, 4, 0]
