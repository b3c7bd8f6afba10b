"""numpy ≡ reference: the optimized CPU path decides exactly as the plain reading of docs/ENGINE.md.

Hand-written corner cases first (every one a case the reference's unit tests compute
by hand), then random Algorithms that use every feature of the rule language.
"""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import assert_backends_agree
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, token_streams
from tiny import WORDS, ids, make_tiny, parse

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule, default_algorithm_path, load_algorithm
from sae.cpu import CpuBackend
from sae.layout import DEFAULT_CAPACITIES, TOLERANCE_MAX, Capacities
from sae.reference import ReferenceBackend

CAPS = DEFAULT_CAPACITIES
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


def agree(alg, docs, caps=CAPS):
    return assert_backends_agree(CpuBackend(alg, caps), ReferenceBackend(alg, caps), alg, docs, caps)


def tokenized(alg, texts):
    return [e.ids for e in alg.tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_the_tiny_rules():
    alg = make_tiny()
    _, batch = agree(alg, tokenized(alg, TEXTS))
    assert batch.stats.committed > 20  # the fixture really rewrites


def test_the_tiny_rules_on_full_streams_and_a_small_journal():
    alg = make_tiny(dim=70)
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, len(WORDS), size=n).tolist() for n in (CAPS.stream, 1, 0, 37)]
    agree(alg, docs)
    agree(alg, tokenized(alg, TEXTS), Capacities(journal=4))


def test_the_bundled_default_on_the_demo_sentences():
    alg = load_algorithm()
    lines = (default_algorithm_path().parent / "demo_pairs.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    texts = [text for row in rows[:10] for text in row[5:7]]
    _, batch = agree(alg, tokenized(alg, texts))
    assert batch.stats.committed > 0


#: Rule sets of the reference's unit tests, each with the words it was computed on.
CASES = {
    "run probe": ('rule a score 50 mark 0: [sym="not"] [word !stop]+3 => set 1 scale=0.5\n'
                  'rule b score 60 mark 1: [sym="."] => set 0 op=NOP', ["not good .", "not good big red ."]),
    "revert and inhibit": ('rule silence score 10 mark 0: [sym="cat"] => set 0 op=NOP\n'
                           'rule no_nop score 50: [op=NOP] => guard\n'
                           'rule halve score 5 mark 1: [sym="cat"] => set 0 scale=0.5', ["cat dog", "cat dog cat", "dog"]),
    "alternatives beaten": ('rule m3 score 300: [word] [] [] => merge\nrule a score 300: [sym="new"] => keep\n'
                            'rule b score 300: [sym="york"] => keep\nrule c score 300: [sym="city"] => keep\n'
                            'rule g score 1: [sym="?"] => guard', ["new york city", "new york city new york"]),
    "other winners": ('rule w1 score 10 mark 1: [sym="cat"] => set 0 op=NOP\n'
                      'rule w2 score 10 mark 2: [sym="dog"] => set 0 op=NOP\n'
                      'rule g score 100: [op=NOP] ~2 [op=NOP] => guard', ["cat the dog", "cat dog cat the dog"]),
    "guard broken up": ('rule swap score 5: [sym="cat"] [sym="dog"] => perm 1 0\n'
                        'rule g score 50: [sym="cat"] [sym="dog"] => guard', ["cat dog", "cat dog cat dog"]),
    "merge judged on its item": ('rule m2 score 200: [word] [] => merge\nrule g score 500: [sym="new"] [word] => guard\n'
                                 'rule lone score 30 mark 3: [word] => set 0 scale=0.5', ["new york city", "run ##s new"]),
    "marks and scale": ("rule halve score 20 mark 1: [word] => set 0 scale=0.5\n"
                        "rule again score 10 mark 2: [word] => set 0 scale=-1.5\n"
                        "rule shared score 15 mark 1: [stop] => set 0 arg1=16777216 scale=64", ["cat the dog , big a"]),
    "anchors and classes": ('rule s score 9: [^ &stop &word] => set 0 mod=1\nrule e score 8: [!word $] => set 0 op=NOP\n'
                            'rule n score 7: [!sym="cat" !stop neg] ~3 [word mod=0]+4 => set 1 mod=2 op=PUSH',
                            ["the not big red cat .", "a cat", "not the a of an dog"]),
    "stack": ("rule neg score 150: [neg] ~2 [word] => set 0 op=PUSH; set 1 op=MUL\n"
              "rule emit score 40: [op=MUL] [word] => set 1 op=EMIT", ["not a good dog eats food", "not not happy"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("tolerance", [0, 45, TOLERANCE_MAX])
def test_hand_written_cases(name, tolerance):
    rules, texts = CASES[name]
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=tolerance, inhibit_steps=2),
                    transforms=2)
    agree(alg, [ids(t) for t in texts])


@pytest.mark.parametrize("update", [ItemUpdate(arg1=-1), ItemUpdate(scale=-1)])
def test_minus_one_is_a_value_not_keep(update):
    """The loader accepts arg1 and scale of -1 (ranges ±ARG1_LIMIT, ±SCALE_LIMIT); §4 applies them."""
    alg = make_tiny(rules=(Rule("r", 5, (PatternElement(),), updates=(update,)),))
    _, batch = agree(alg, [ids("cat")])
    assert batch.items[0, 0]["arg1"] == -1


# -- random Algorithms and token streams ---------------------------------------------------------

capacities = st.sampled_from([CAPS, CAPS, Capacities(journal=3), Capacities(stream=16, rules=8, journal=5)])


@settings(max_examples=200)
@given(algorithms(), st.lists(token_streams(24), max_size=6), capacities)
def test_random_algorithms_agree(alg, docs, caps):
    agree(alg, docs, caps)


@settings(max_examples=15)
@given(st.lists(st.lists(st.sampled_from(WORDS[2:]), max_size=30), min_size=1, max_size=8))
def test_random_texts_with_the_tiny_rules_agree(words):
    alg = make_tiny()
    agree(alg, tokenized(alg, [" ".join(w) for w in words]))
