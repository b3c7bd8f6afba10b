"""Hypothesis strategies shared by the test tiers: random rules, Algorithms and texts over tests/tiny.py."""

from __future__ import annotations

from hypothesis import strategies as st
from tiny import CLASSES, WORDS, make_tiny

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
from sae.layout import ANY, DEFAULT_CAPACITIES, SCORE_MAX, Op

N_SYMBOLS = make_tiny().n_symbols


@st.composite
def elements(draw, first: bool, merge: bool):
    gap = 0 if first or merge else draw(st.integers(0, DEFAULT_CAPACITIES.gap))
    opcode = draw(st.one_of(st.just(ANY), st.sampled_from([int(o) for o in Op])))
    symbol = draw(st.one_of(st.just(ANY), st.just(ANY), st.integers(0, N_SYMBOLS - 1)))
    classes = tuple(draw(st.lists(st.sampled_from(CLASSES), max_size=2, unique=True)))
    return PatternElement(gap, opcode, symbol, classes)


@st.composite
def updates(draw):
    return ItemUpdate(
        opcode=draw(st.one_of(st.none(), st.sampled_from([int(o) for o in Op]))),
        arg0=draw(st.one_of(st.none(), st.integers(0, N_SYMBOLS - 1))),
        arg1=draw(st.one_of(st.none(), st.integers(-(1 << 18), 1 << 18))),
    )


@st.composite
def rules(draw, index: int, reorder_only: bool = False):
    """One rule: a merge, or a rewrite; ``reorder_only`` rewrites only permute their items."""
    merge = not reorder_only and draw(st.booleans()) and draw(st.booleans())
    k = draw(st.integers(2, 3)) if merge else draw(st.integers(1, DEFAULT_CAPACITIES.pattern))
    pattern = tuple(draw(elements(e == 0, merge)) for e in range(k))
    score = draw(st.integers(1, SCORE_MAX - 100))
    if merge:
        ups = tuple(draw(st.lists(updates(), max_size=1)))
        return Rule(f"r{index}", score, pattern, kind="merge", updates=ups)
    perm = tuple(draw(st.permutations(range(k)))) if reorder_only or draw(st.booleans()) else ()
    ups = () if reorder_only else tuple(draw(st.lists(updates(), max_size=k)))
    return Rule(f"r{index}", score, pattern, perm=perm, updates=ups)


@st.composite
def algorithms(draw, reorder_only: bool = False):
    n = draw(st.integers(0, 8))
    rs = tuple(draw(rules(i, reorder_only)) for i in range(n))
    params = LoopParams(
        max_steps=draw(st.integers(0, 12)),
        tolerance=draw(st.sampled_from([0, 0, 50, 300, 1 << 20])),
        inhibit_steps=draw(st.integers(0, 4)),
    )
    dim = draw(st.sampled_from([1, 8, 65]))
    return make_tiny(rules=rs, params=params, dim=dim, seed=draw(st.integers(0, 3)))


#: Batches of texts over the tiny vocabulary, as strings and as token ids.
texts = st.lists(st.lists(st.sampled_from(WORDS[2:]), max_size=24).map(" ".join), min_size=1, max_size=6)
token_lists = st.lists(st.lists(st.integers(0, len(WORDS) - 1), max_size=24), max_size=10)
