"""The reference's actions (docs/ENGINE.md §4): rewrites, scale, marks, merges, guards."""

from __future__ import annotations

import pytest
from tiny import ids, make_tiny, parse, token_id

from sae import reference as ref
from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
from sae.layout import ARG1_LIMIT, DEFAULT_CAPACITIES, Q16_ONE, SCALE_LIMIT, Op

CAPS = DEFAULT_CAPACITIES
ACC, NOP, PUSH = int(Op.ACC), int(Op.NOP), int(Op.PUSH)


def applied(alg, words: str, p: int, r: int = 0, stream=None) -> list[ref.Item]:
    stream = stream if stream is not None else ref.widen(ids(words), alg)
    m = ref.match_at(alg, r, stream, p)
    assert m is not None
    return ref.apply_bid(alg, stream, m)


def item(word: str, pos: int, **changes) -> ref.Item:
    """The widened item of ``word`` at ``pos`` (tiny: symbol = token = vector row), with ``changes``."""
    t = token_id(word)
    fields = dict(symbol=t, token=t, pos=pos, span=1, opcode=ACC, arg0=t, arg1=Q16_ONE, mod=0, marks=0)
    fields.update(changes)
    return ref.Item(**fields)


# -- rewrite: perm ---------------------------------------------------------------------------------


def test_perm_moves_whole_items_and_marks_them():
    alg = make_tiny(rules=parse("rule swap score 1 mark 6: [word] [word] => perm 1 0"))
    assert applied(alg, "cat dog", 0) == [item("dog", 1, marks=64), item("cat", 0, marks=64)]


def test_perm_over_a_gap_leaves_the_skipped_item():
    alg = make_tiny(rules=parse("rule swap score 1 mark 1: [word] ~1 [word] => perm 1 0"))
    assert applied(alg, "cat , dog", 0) == [item("dog", 2, marks=2), item(",", 1), item("cat", 0, marks=2)]


def test_updates_follow_the_element_not_the_item_it_came_from():
    alg = make_tiny(rules=parse("rule swap score 1 mark 0: [word] [word] => perm 1 0; set 0 arg1=5"))
    assert applied(alg, "cat dog", 0) == [item("dog", 1, arg1=5, marks=1), item("cat", 0, marks=1)]


def test_a_three_element_perm():
    alg = make_tiny(rules=parse("rule rot score 1 mark 0: [word] [word] [word] => perm 2 0 1"))
    got = applied(alg, "cat dog big", 0)
    assert [x.pos for x in got] == [2, 0, 1]
    assert [x.marks for x in got] == [1, 1, 1]


# -- rewrite: set, scale, mod ---------------------------------------------------------------------


def test_set_every_field():
    alg = make_tiny(rules=parse('rule r score 1 mark 2: [sym="cat"] => set 0 op=PUSH arg0=5 arg1=1000 mod=2'))
    assert applied(alg, "cat dog", 0) == [item("cat", 0, opcode=PUSH, arg0=5, arg1=1000, mod=2, marks=4), item("dog", 1)]


def test_set_arg1_comes_before_scale():
    rule = Rule("r", 1, (PatternElement(),), updates=(ItemUpdate(arg1=1000, scale=Q16_ONE // 2),), mark=0)
    assert applied(make_tiny(rules=(rule,)), "cat", 0)[0].arg1 == 500


def test_set_mod_zero_clears_a_transform():
    alg = make_tiny(rules=parse("rule r score 1: [mod=3] => set 0 mod=0"))
    stream = ref.widen(ids("cat"), alg)
    stream[0].mod = 3
    assert applied(alg, "", 0, stream=stream)[0].mod == 0


@pytest.mark.parametrize(
    "arg1, scale, want",
    [
        (3, Q16_ONE // 2, 1),  # 1.5 rounds toward zero
        (-3, Q16_ONE // 2, -1),  # -1.5 too: not floor
        (1, Q16_ONE - 1, 0),
        (-1, Q16_ONE - 1, 0),
        (Q16_ONE, -98304, -98304),
        (100000, 100000, 152587),  # 152587.89...
        (-100000, 100000, -152587),
        (100000, -100000, -152587),
        (Q16_ONE, 0, 0),
        (ARG1_LIMIT, 2 * Q16_ONE, ARG1_LIMIT),  # clamped
        (-ARG1_LIMIT, 2 * Q16_ONE, -ARG1_LIMIT),
        (ARG1_LIMIT, -SCALE_LIMIT, -ARG1_LIMIT),
        (ARG1_LIMIT, SCALE_LIMIT, ARG1_LIMIT),
        (ARG1_LIMIT // 64, SCALE_LIMIT, ARG1_LIMIT),  # exactly the limit
        (ARG1_LIMIT // 64 + 1, SCALE_LIMIT, ARG1_LIMIT),
        (-(ARG1_LIMIT // 64) - 1, SCALE_LIMIT, -ARG1_LIMIT),
    ],
)
def test_scale_is_exact_truncated_and_clamped(arg1, scale, want):
    assert ref.scale_weight(arg1, scale) == want


def test_scale_through_a_rule():
    rule = Rule("r", 1, (PatternElement(),), updates=(ItemUpdate(scale=-98304),), mark=0)
    alg = make_tiny(rules=(rule,))
    stream = ref.widen(ids("cat"), alg)
    stream[0].arg1 = 3
    assert applied(alg, "", 0, stream=stream)[0].arg1 == -4  # -4.5 toward zero


def test_a_run_updates_and_marks_every_item_of_the_run():
    alg = make_tiny(rules=parse('rule r score 1 mark 5: [sym="not"] [word !stop]+3 => set 1 op=NOP'))
    got = applied(alg, "not good big . red", 0)
    assert got == [item("not", 0), item("good", 1, opcode=NOP, marks=32), item("big", 2, opcode=NOP, marks=32),
                   item(".", 3), item("red", 4)]


def test_gap_items_are_not_touched():
    alg = make_tiny(rules=parse('rule r score 1 mark 0: [sym="not"] ~2 [word !stop] => set 1 scale=0.5'))
    assert applied(alg, "not a good", 0) == [item("not", 0), item("a", 1), item("good", 2, arg1=Q16_ONE // 2, marks=1)]


def test_a_rule_that_changes_nothing_marks_element_zero():
    alg = make_tiny(rules=parse("rule r score 1 mark 9: [word] [word] => keep"))
    assert applied(alg, "cat dog", 0) == [item("cat", 0, marks=512), item("dog", 1)]


def test_apply_leaves_its_input_alone():
    alg = make_tiny(rules=parse("rule r score 1: [word] [word] => perm 1 0; set 1 arg1=3"))
    stream = ref.widen(ids("cat dog"), alg)
    before = [ref.Item(**vars(x)) for x in stream]
    applied(alg, "", 0, stream=stream)
    assert stream == before


# -- a rule never rewrites an item twice ------------------------------------------------------------


def final(alg, words: str) -> list[ref.Item]:
    stream, _, _ = ref.anneal_document(alg, CAPS, ref.widen(ids(words), alg))
    return stream


def test_a_relative_change_applies_once_per_mark():
    loop = LoopParams(max_steps=8, tolerance=0, inhibit_steps=1)
    halve = "rule halve score 20 mark 1: [word] => set 0 scale=0.5"
    assert [x.arg1 for x in final(make_tiny(rules=parse(halve), params=loop), "cat dog , big")] == \
        [Q16_ONE // 2, Q16_ONE // 2, Q16_ONE, Q16_ONE // 2]
    # A second rule with its own mark halves again; one sharing the mark cannot.
    again = halve + "\nrule again score 10 mark 2: [word] => set 0 scale=0.5"
    assert [x.arg1 for x in final(make_tiny(rules=parse(again), params=loop), "cat dog")] == [Q16_ONE // 4] * 2
    shared = halve + "\nrule shared score 10 mark 1: [word] => set 0 scale=0.5"
    assert [x.arg1 for x in final(make_tiny(rules=parse(shared), params=loop), "cat dog")] == [Q16_ONE // 2] * 2


# -- merge ---------------------------------------------------------------------------------------------

MERGE3 = "rule m3 score 300 mark 4: [word] [] [] => merge"


def test_a_merge_folds_its_items_into_the_phrase_and_shifts_the_rest():
    alg = make_tiny(rules=parse(MERGE3))
    got = applied(alg, "the new york city is", 1)
    phrase = alg.vocab_size + 3  # "new york city"
    merged = ref.Item(symbol=phrase, token=token_id("new"), pos=1, span=3, opcode=ACC, arg0=phrase, arg1=Q16_ONE,
                      mod=0, marks=16)
    assert got == [item("the", 0), merged, item("is", 4)]


def test_a_merge_ors_the_marks_and_resets_the_rest():
    alg = make_tiny(rules=parse(MERGE3))
    stream = ref.widen(ids("new york city"), alg)
    stream[0].marks, stream[1].marks = 1, 1 << 7
    stream[1].opcode, stream[1].arg1, stream[2].mod, stream[2].arg0 = NOP, 5, 2, 9
    (merged,) = applied(alg, "", 0, stream=stream)
    assert (merged.opcode, merged.arg0, merged.arg1, merged.mod, merged.marks) == \
        (ACC, alg.vocab_size + 3, Q16_ONE, 0, 1 | 1 << 7 | 1 << 4)


def test_element_zeros_actions_apply_to_the_merged_item():
    rule = Rule("m", 200, (PatternElement(), PatternElement()), kind="merge", mark=0,
                updates=(ItemUpdate(opcode=PUSH, scale=2 * Q16_ONE, mod=1),))
    (merged,) = applied(make_tiny(rules=(rule,)), "run ##s", 0)
    assert (merged.symbol, merged.opcode, merged.arg1, merged.mod, merged.marks) == \
        (make_tiny().vocab_size + 2, PUSH, 2 * Q16_ONE, 1, 1)


def test_a_merge_keeps_the_first_items_token_and_pos():
    alg = make_tiny(rules=parse("rule m2 score 200: [word] [] => merge"))
    stream = ref.widen(ids("cat play ##ing"), alg)
    stream[1].pos, stream[1].token = 7, 3  # as after a reorder
    got = applied(alg, "", 1, stream=stream)
    assert (got[1].token, got[1].pos, got[1].span) == (3, 7, 2)
    assert len(got) == 2


def test_guards_are_never_applied():
    alg = make_tiny(rules=parse("rule g score 1: [word] => guard"))
    stream = ref.widen(ids("cat"), alg)
    with pytest.raises(ValueError, match="guard"):
        ref.apply_bid(alg, stream, ref.match_at(alg, 0, stream, 0))
