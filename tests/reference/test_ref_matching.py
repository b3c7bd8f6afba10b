"""The reference's matching (docs/ENGINE.md §2), feature by feature, on hand-computed cases."""

from __future__ import annotations

import pytest
from tiny import ids, make_tiny, parse, token_id

from sae import reference as ref
from sae.algorithm import PatternElement, Rule
from sae.layout import (
    DEFAULT_CAPACITIES,
    FLAG_AT_END,
    FLAG_AT_START,
    FLAG_NOT_SYMBOL,
    FLAG_TARGET,
    Capacities,
    Op,
)

CAPS = DEFAULT_CAPACITIES


def anchors(rules_text: str, words: str, r: int = 0, stream=None) -> list[int]:
    """Anchors where rule ``r`` matches the stream of ``words``."""
    alg = make_tiny(rules=parse(rules_text))
    stream = stream if stream is not None else ref.widen(ids(words), alg)
    return [p for p in range(len(stream)) if ref.match_at(alg, r, stream, p) is not None]


def match(rules_text: str, words: str, p: int, r: int = 0) -> ref.Match | None:
    alg = make_tiny(rules=parse(rules_text))
    return ref.match_at(alg, r, ref.widen(ids(words), alg), p)


# -- element tests -------------------------------------------------------------------------------


def test_opcode_test():
    alg = make_tiny(rules=parse("rule r score 1: [op=NOP] => keep"))
    stream = ref.widen(ids("cat dog cat"), alg)
    stream[1].opcode = int(Op.NOP)
    assert [p for p in range(3) if ref.match_at(alg, 0, stream, p)] == [1]


def test_symbol_test_and_its_negation():
    assert anchors('rule r score 1: [sym="cat"] => keep', "cat dog cat the") == [0, 2]
    assert anchors('rule r score 1: [!sym="cat"] => keep', "cat dog cat the") == [1, 3]


def test_any_class_mask():
    # "the" is stop and word, "," punct, "##s" cont, "1" has no class.
    assert anchors("rule r score 1: [stop punct] => keep", "the , ##s 1 cat") == [0, 1]


def test_all_class_mask():
    assert anchors("rule r score 1: [&stop &word] => keep", "the , not cat") == [0]
    assert anchors("rule r score 1: [&neg &word] => keep", "the , not cat") == [2]


def test_none_class_mask():
    assert anchors("rule r score 1: [!word] => keep", "the , ##s 1 cat") == [1, 2, 3]
    assert anchors("rule r score 1: [word !stop !neg] => keep", "the not cat dog") == [2, 3]


def test_mod_test_zero_is_a_value_not_a_wildcard():
    alg = make_tiny(rules=parse("rule one score 1: [mod=1] => keep\nrule zero score 1: [mod=0] => keep"))
    stream = ref.widen(ids("cat dog cat"), alg)
    stream[2].mod = 1
    assert [p for p in range(3) if ref.match_at(alg, 0, stream, p)] == [2]
    assert [p for p in range(3) if ref.match_at(alg, 1, stream, p)] == [0, 1]


def test_at_start_and_at_end():
    assert anchors("rule r score 1: [^ word] => keep", "cat dog cat") == [0]
    assert anchors("rule r score 1: [word $] => keep", "cat dog cat") == [2]
    assert anchors("rule r score 1: [^ word $] => keep", "cat") == [0]
    assert anchors("rule r score 1: [^ word $] => keep", "cat dog") == []
    # A later element's flag is about its own position: [word] [$] ends the stream.
    assert anchors("rule r score 1: [word] [$] => keep", "cat dog cat") == [1]


def test_target_test_blocks_only_the_rules_own_mark_bit():
    alg = make_tiny(rules=parse("rule a score 1 mark 3: [word] => set 0 arg1=7\nrule b score 1 mark 4: [word] => keep"))
    stream = ref.widen(ids("cat dog"), alg)
    stream[0].marks = 1 << 3
    stream[1].marks = 1 << 4
    assert [p for p in range(2) if ref.match_at(alg, 0, stream, p)] == [1]
    assert [p for p in range(2) if ref.match_at(alg, 1, stream, p)] == [0]


def test_target_test_applies_to_changed_elements_only():
    # Only element 1 changes: a mark on element 0's item does not stop the rule.
    alg = make_tiny(rules=parse("rule r score 1 mark 2: [neg] [word] => set 1 op=NOP"))
    stream = ref.widen(ids("not cat"), alg)
    stream[0].marks = 1 << 2
    assert ref.match_at(alg, 0, stream, 0) is not None
    stream[1].marks = 1 << 2
    assert ref.match_at(alg, 0, stream, 0) is None


def test_guards_never_test_marks():
    alg = make_tiny(rules=parse("rule g score 1 mark 0: [word] => guard"))
    stream = ref.widen(ids("cat"), alg)
    stream[0].marks = 0xFFFFFFFF
    assert ref.match_at(alg, 0, stream, 0) is not None


@pytest.mark.parametrize(
    "text, targets",
    [
        ("rule r score 1: [word] [word] => perm 1 0", {0, 1}),
        ("rule r score 1: [word] [word] [word] => perm 0 2 1", {1, 2}),
        ("rule r score 1: [word] [word] => set 1 scale=0.5", {1}),
        ("rule r score 1: [word] [word] [word] => set 2 mod=0", {2}),
        ("rule r score 1: [word] [word] => keep", {0}),
        ("rule r score 1: [word] [word] => perm 0 1", {0}),  # the identity changes nothing
        ("rule r score 1: [word] [word] => merge", {0, 1}),
        ("rule r score 1: [word] [word] => guard", set()),
    ],
)
def test_target_elements_and_the_compiled_flags(text, targets):
    alg = make_tiny(rules=parse(text))
    assert ref.target_elements(alg.rules[0]) == targets
    flags = alg.compile_rules(CAPS)[0]["flags"]
    assert {e for e in range(len(alg.rules[0].pattern)) if flags[e] & FLAG_TARGET} == targets


def test_compiled_flags_of_the_other_tests():
    alg = make_tiny(rules=parse('rule r score 1: [^ !sym="cat"] [word $] => keep'))
    flags = alg.compile_rules(CAPS)[0]["flags"]
    assert flags[0] == FLAG_AT_START | FLAG_NOT_SYMBOL | FLAG_TARGET
    assert flags[1] == FLAG_AT_END


# -- positions: gaps and runs ---------------------------------------------------------------------

NOT_GAP = 'rule r score 1: [sym="not"] ~2 [word !stop] => keep'


def test_a_gap_takes_the_first_passing_item_in_its_window():
    assert match(NOT_GAP, "not good dog", 0).last == (0, 1)
    assert match(NOT_GAP, "not a good dog", 0).last == (0, 2)
    assert match(NOT_GAP, "not a the dog", 0).last == (0, 3)
    assert match(NOT_GAP, "not a the an dog", 0) is None  # dog is three items away
    assert match(NOT_GAP, "not a", 0) is None  # the window runs off the stream


def test_gap_items_belong_to_no_element():
    m = match(NOT_GAP, "not a the dog", 0)
    assert (m.first, m.last, m.end) == ((0, 3), (0, 3), 3)
    assert list(m.items_of(1)) == [3]


RUN = 'rule r score 1: [sym="not"] [word !stop]+3 => keep'


def test_a_run_takes_one_to_run_items():
    m = match(RUN, "not good big red dog", 0)
    assert (m.first, m.last) == ((0, 1), (0, 3))
    assert match(RUN, "not good .", 0).last == (0, 1)
    assert match(RUN, "not . good", 0) is None


def test_the_extent_adds_the_item_a_final_run_stopped_at():
    assert match(RUN, "not good big red dog", 0).end == 3  # the run is full: nothing more examined
    assert match(RUN, "not good big .", 0).end == 3  # "." was examined and failed
    assert match(RUN, "not good big", 0).end == 2  # the stream ended


def test_a_run_inside_the_pattern_adds_nothing_past_the_span():
    m = match('rule r score 1: [stop]+4 [word !stop] => keep', "the a of cat dog", 0)
    assert (m.first, m.last, m.end) == ((0, 3), (2, 3), 3)


def test_runs_are_greedy_without_backtracking():
    # The run swallows "dog", so the next element finds nothing.
    assert match('rule r score 1: [word]+3 [sym="dog"] => keep', "cat dog", 0) is None
    assert match('rule r score 1: [word]+2 [sym="dog"] => keep', "cat big dog", 0).last == (1, 2)


def test_a_run_after_a_gap():
    m = match('rule r score 1: [sym="not"] ~1 [word !stop]+2 => keep', "not the good big red", 0)
    assert (m.first, m.last, m.end) == ((0, 2), (0, 3), 3)


def test_at_end_on_a_run():
    # Every item of a run passes every test: with $ only the last item can.
    assert match('rule r score 1: [sym="not"] [word $]+3 => keep', "not good big", 0) is None
    assert match('rule r score 1: [sym="not"] [word $]+3 => keep', "not good", 0).last == (0, 1)


# -- merges and the lexicon -------------------------------------------------------------------------

MERGES = "rule m2 score 200: [word] [] => merge\nrule m3 score 300: [word] [] [] => merge"


def test_a_merge_must_spell_a_lexicon_phrase():
    alg = make_tiny(rules=parse(MERGES))
    stream = ref.widen(ids("new york city play ##er ##s york new"), alg)
    found = {(b.anchor, b.rule): (b.match.phrase, b.score) for b in ref.bids_of(alg, CAPS, stream)}
    # phrases (sorted): 0 play ##ing, 1 play ##er ##s, 2 run ##s, 3 new york city, 4 new york; bonus 10 per token.
    assert found == {(0, 0): (4, 220), (0, 1): (3, 330), (3, 1): (1, 330)}


def test_a_merged_symbol_never_merges_again():
    alg = make_tiny(rules=parse(MERGES))
    stream = ref.widen(ids("new york"), alg)
    stream[0].symbol = alg.vocab_size + 4  # "new york" itself
    assert ref.bids_of(alg, CAPS, stream) == []


def test_merge_elements_keep_their_tests():
    alg = make_tiny(rules=parse("rule m score 200: [word] [cont] => merge"))
    assert [b.anchor for b in ref.bids_of(alg, CAPS, ref.widen(ids("run ##s new york"), alg))] == [0]


# -- bids, keys, potential -----------------------------------------------------------------------------


@pytest.mark.parametrize("caps", [CAPS, Capacities(stream=16, rules=8), Capacities(stream=512, rules=64),
                                  Capacities(rules=1)])
def test_bid_keys_follow_the_layouts_packing(caps):
    for score, anchor, rule in [(1, 0, 0), (7, caps.stream - 1, caps.rules - 1), (32767, 3, 0), (40, 0, caps.rules - 1)]:
        key = ref.bid_key(caps, score, anchor, rule)
        assert key == caps.keys.pack(score, anchor, rule)
        assert caps.keys.unpack(key) == (score, anchor, rule)
        assert 0 < key < 2**32


def test_larger_key_means_higher_score_then_lower_anchor_then_lower_rule():
    k = lambda s, p, r: ref.bid_key(CAPS, s, p, r)  # noqa: E731
    assert k(2, 127, 255) > k(1, 0, 0)
    assert k(5, 3, 9) > k(5, 4, 0)
    assert k(5, 3, 1) > k(5, 3, 2)


def test_potential_counts_guards_negatively():
    alg = make_tiny(rules=parse('rule r score 10: [sym="cat"] => keep\nrule g score 7: [word] => guard'))
    bids = ref.bids_of(alg, CAPS, ref.widen(ids("cat dog"), alg))
    assert sorted((b.anchor, b.rule, b.signed) for b in bids) == [(0, 0, 10), (0, 1, -7), (1, 1, -7)]
    assert ref.potential(bids) == -4


def test_every_rule_matches_at_every_anchor_independently():
    alg = make_tiny()
    stream = ref.widen(ids("the new york city is big"), alg)
    bids = ref.bids_of(alg, CAPS, stream)
    assert len({b.key for b in bids}) == len(bids)
    names = sorted((b.anchor, alg.rules[b.rule].name) for b in bids)
    assert names == [
        (0, "soften_stop"), (0, "swap_adj"),
        (1, "merge2"), (1, "merge3"), (1, "swap_adj"),
        (2, "swap_adj"),
        (3, "swap_adj"),
        (4, "soften_stop"), (4, "swap_adj"),
    ]


def test_no_rules_no_bids():
    alg = make_tiny(rules=())
    assert ref.bids_of(alg, CAPS, ref.widen(ids("cat dog"), alg)) == []


def test_element_built_by_hand_matches_like_the_parsed_one():
    """parse() is only shorthand: PatternElement fields are what the reference reads."""
    el = PatternElement(symbol=token_id("cat"), not_symbol=True, none_classes=("punct",), at_start=True)
    by_hand = make_tiny(rules=(Rule("r", 1, (el,)),))
    parsed = make_tiny(rules=parse('rule r score 1: [^ !sym="cat" !punct] => keep'))
    assert by_hand.rules == parsed.rules
    for words in ("dog cat dog", "cat dog", ", dog"):
        stream = ref.widen(ids(words), by_hand)
        assert [p for p in range(len(stream)) if ref.match_at(by_hand, 0, stream, p)] == ([0] if words == "dog cat dog" else [])
