"""CPU == GPU: the tiny Algorithm's hand-written rules, random Algorithms, random texts."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import assert_backends_agree, gpu_skip_reason
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, token_lists
from tiny import WORDS, make_tiny

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
from sae.layout import COMMITTED, DEFAULT_CAPACITIES, REVERTED, Capacities, Op

_reason = gpu_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

TEXTS = [
    "the new york city is big",
    "not a good dog , the cat is playing !",
    "",
    "players run runs new york",
    "a very small red house of the man and the woman eats food .",
    "not not not happy ! ? sad",
    "new york new york city new",
    "the the the a an of and is was",
    "1 2 , 1 2 . the man runs",
    "big red dog eats small blue cat",
]


def _ids(alg, texts, caps=DEFAULT_CAPACITIES):
    enc = alg.tokenizer.encode_batch(texts, add_special_tokens=False)
    return [e.ids[: caps.stream] for e in enc]


def test_tiny_rules_agree():
    alg = make_tiny()
    bc, _ = assert_backends_agree(alg, _ids(alg, TEXTS))
    # The fixture must actually rewrite: merges, updates and reverts all happen.
    assert bc.journal_len[: len(TEXTS)].sum() > 20
    assert (bc.lengths[: len(TEXTS)] < np.array([len(t) for t in _ids(alg, TEXTS)])).any()


def test_tiny_with_tolerance_and_reverts():
    alg = make_tiny(params=LoopParams(max_steps=12, tolerance=0, inhibit_steps=3))
    assert_backends_agree(alg, _ids(alg, TEXTS * 2), chunk=7)  # 20 documents in 3 chunks


def test_full_length_streams_and_chunks():
    alg = make_tiny(dim=70)  # two workgroups of dimensions in the VM
    rng = np.random.default_rng(1)
    stream = DEFAULT_CAPACITIES.stream
    ids = [rng.integers(0, len(WORDS), size=n).tolist() for n in (stream, stream, 1, 0, stream - 1, 37)]
    assert_backends_agree(alg, ids, chunk=4)


def test_empty_inputs():
    alg = make_tiny()
    assert_backends_agree(alg, [])
    assert_backends_agree(alg, [[], []])
    assert_backends_agree(alg.without_rules(), _ids(alg, TEXTS))


def _step_journal(batch, doc: int, step: int) -> list[tuple[int, int, int, int]]:
    """(rank, rule, pos, outcome) of one document's journal entries of one step."""
    j = batch.journal[doc, : batch.journal_len[doc]]
    j = j[j["step"] == step]
    return [(int(e["rank"]), int(e["rule"]), int(e["pos"]), int(e["outcome"])) for e in j]


def test_several_winners_commit_in_one_step():
    alg = make_tiny(params=LoopParams(max_steps=16, tolerance=1000, inhibit_steps=2))
    _, bg = assert_backends_agree(alg, _ids(alg, ["new york city , the dog is playing !"]))
    first = _step_journal(bg, 0, 0)
    # merge3 "new york city", silence ",", soften "the" and "is", merge2 "play ##ing",
    # silence "!": six disjoint winners, ranked by anchor, all committed at once.
    assert [(rank, pos) for rank, _, pos, _ in first] == [(0, 0), (1, 3), (2, 4), (3, 6), (4, 7), (5, 9)]
    assert all(outcome == COMMITTED for *_, outcome in first)
    assert bg.lengths[0] == 7  # the two merges removed three of ten positions


def _revert_rules() -> tuple[Rule, ...]:
    P = PatternElement  # noqa: N806
    dog, cat = WORDS.index("dog"), WORDS.index("cat")
    return (
        Rule("merge", 200, (P(classes=("word",)), P()), kind="merge"),
        # Silencing "dog" destroys acc_dog's bid as well: 190 > 100, reverted.
        Rule("silence_dog", 100, (P(symbol=dog),), updates=(ItemUpdate(opcode=int(Op.NOP)),)),
        Rule("acc_dog", 90, (P(opcode=int(Op.ACC), symbol=dog),)),
        Rule("mark_cat", 50, (P(symbol=cat),)),
    )


def test_a_revert_among_several_winners():
    alg = make_tiny(rules=_revert_rules(), params=LoopParams(max_steps=4, tolerance=0, inhibit_steps=2))
    _, bg = assert_backends_agree(alg, _ids(alg, ["new york dog the cat", "dog the cat"]))
    # The merge left of the reverted winner commits, and so does the winner after it:
    # the stream is rebuilt from the backup with both, the second one shifted by one.
    assert _step_journal(bg, 0, 0) == [(0, 0, 0, COMMITTED), (1, 1, 2, REVERTED), (2, 3, 4, COMMITTED)]
    assert _step_journal(bg, 0, 1) == [(0, 2, 1, COMMITTED)]  # silence_dog is inhibited
    assert _step_journal(bg, 1, 0) == [(0, 1, 0, REVERTED), (1, 3, 2, COMMITTED)]
    assert bg.lengths[:2].tolist() == [4, 3]


@pytest.mark.parametrize("journal", [1, 5, 12])
def test_full_journal_drops_the_last_winners(journal):
    caps = Capacities(journal=journal)
    alg = make_tiny(params=LoopParams(max_steps=16, tolerance=1000, inhibit_steps=2))
    stops = "the the the a an of and is was"  # nine winners of soften_stop in step 0
    _, bg = assert_backends_agree(alg, _ids(alg, [stops, *TEXTS], caps), caps=caps)
    assert [rank for rank, *_ in _step_journal(bg, 0, 0)] == list(range(min(journal, 9)))
    assert bg.journal_len[: len(TEXTS) + 1].max() == journal


def test_small_capacities():
    caps = Capacities(stream=16, rules=8, pattern=3, gap=2, phrase=3, stack=2, steps=8, dim=16)
    P = PatternElement  # noqa: N806
    rules = (
        Rule("merge2", 200, (P(classes=("word",)), P()), kind="merge"),
        Rule("push", 50, (P(opcode=int(Op.ACC), classes=("word",)), P(gap=2, classes=("word",))),
             updates=(ItemUpdate(opcode=int(Op.PUSH)), ItemUpdate(opcode=int(Op.EMIT)))),
    )
    alg = make_tiny(rules=rules, params=LoopParams(max_steps=8, tolerance=5, inhibit_steps=1))
    assert_backends_agree(alg, _ids(alg, TEXTS, caps), caps=caps)


# -- random Algorithms and texts ------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(alg=algorithms(), ids=token_lists, chunk=st.sampled_from([None, 3]), journal=st.sampled_from([256, 256, 3]))
def test_random_algorithms_agree(alg, ids, chunk, journal):
    assert_backends_agree(alg, ids, caps=Capacities(journal=journal), chunk=chunk)


@settings(max_examples=10, deadline=None)
@given(words=st.lists(st.lists(st.sampled_from(WORDS[2:]), max_size=30), min_size=1, max_size=12))
def test_random_texts_agree(words):
    alg = make_tiny()
    assert_backends_agree(alg, _ids(alg, [" ".join(w) for w in words]))
