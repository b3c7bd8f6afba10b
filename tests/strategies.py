"""Hypothesis strategies shared by the test tiers: random rules, Algorithms and texts over tests/tiny.py."""

from __future__ import annotations

from hypothesis import strategies as st
from tiny import CLASSES, WORDS, make_tiny

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
from sae.layout import ANY, Op

element = st.builds(
    PatternElement,
    gap=st.integers(0, 2),
    opcode=st.sampled_from([ANY, int(Op.ACC), int(Op.NOP), int(Op.PUSH)]),
    symbol=st.sampled_from([ANY, ANY, ANY, 2, 7, 8, 14]),
    classes=st.lists(st.sampled_from(CLASSES), max_size=2, unique=True).map(tuple),
)


@st.composite
def rule(draw, name: str, reorder_only: bool = False):
    k = draw(st.integers(1, 3))
    els = draw(st.lists(element, min_size=k, max_size=k))
    els[0] = PatternElement(0, els[0].opcode, els[0].symbol, els[0].classes)
    score = draw(st.integers(1, 400))
    if not reorder_only and k >= 2 and draw(st.integers(0, 3)) == 0:
        merge_els = [PatternElement(0, e.opcode, e.symbol, e.classes) for e in els]
        return Rule(name, score, tuple(merge_els), kind="merge")
    perm = tuple(draw(st.permutations(range(k))))
    updates = ()
    if not reorder_only:
        updates = tuple(
            draw(st.lists(st.builds(ItemUpdate,
                                    opcode=st.none() | st.sampled_from(list(map(int, Op))),
                                    arg1=st.none() | st.integers(-65536, 131072)),
                          max_size=k))
        )
    return Rule(name, score, tuple(els), "rewrite", perm, updates)


@st.composite
def algorithms(draw, reorder_only: bool = False):
    n = draw(st.integers(1, 6))
    rules = tuple(draw(rule(f"r{i}", reorder_only)) for i in range(n))
    params = LoopParams(
        max_steps=draw(st.integers(0, 12)),
        tolerance=draw(st.sampled_from([0, 50, 1000, 10**6])),
        inhibit_steps=draw(st.integers(0, 4)),
    )
    return make_tiny(rules=rules, params=params)


texts = st.lists(
    st.lists(st.sampled_from(WORDS[2:]), max_size=24).map(" ".join), min_size=1, max_size=6
)
