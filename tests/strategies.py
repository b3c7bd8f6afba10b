"""Hypothesis strategies shared by the test tiers: random rules, Algorithms and texts over tests/tiny.py.

Random Algorithms use every feature of the engine's rule language (docs/ENGINE.md
§2-§4): the three rule kinds, every element test and flag, gaps, runs, perms, every
update (scale and mod included), explicit and shared mark bits, VM transforms, and
loop parameters from "check everything" to "check nothing". They respect every rule
the loader enforces (``_Loader`` in sae/algorithm.py), so each one survives
``save_algorithm`` + ``load_algorithm`` (tests/test_strategies.py checks that).

Weights stay moderate (``arg1`` up to 2.0, scales up to 2.0 with a few extremes) so
the VM's float32 arithmetic stays far from overflow on any backend.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st
from tiny import CLASSES, PHRASES, WORDS, make_tiny, token_id

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule
from sae.layout import (
    ARG1_LIMIT,
    DEFAULT_CAPACITIES,
    MARK_BITS,
    Q16_ONE,
    SCALE_LIMIT,
    SCORE_MAX,
    TOLERANCE_MAX,
    Op,
)

CAPS = DEFAULT_CAPACITIES
N_SYMBOLS = make_tiny().n_symbols
N_ROWS = N_SYMBOLS  # tiny: one vector row per symbol
#: Merges may not push a bid past SCORE_MAX with the largest phrase bonus (30 in tiny).
MAX_BONUS = int(make_tiny().phrase_bonus.max())
PHRASE_WIDTH = max(len(p) for p in PHRASES)
OPCODES = [int(o) for o in Op]
#: What rewrites write and guards look for, NOP most often, so that rewrites create guard matches.
WRITTEN_OPCODES = st.one_of(st.just(int(Op.NOP)), st.sampled_from(OPCODES))


def _maybe(strategy, p_none: int = 3):
    """``None`` about ``p_none`` times in ``p_none + 1``, else a value of ``strategy``."""
    return st.one_of(*([st.none()] * p_none), strategy)


#: Symbols: mostly real words, sometimes a phrase symbol or [PAD]/[UNK].
symbols = st.one_of(st.integers(2, len(WORDS) - 1), st.integers(0, N_SYMBOLS - 1))
scores = st.one_of(st.integers(1, 400), st.integers(1, 400), st.integers(1, SCORE_MAX - MAX_BONUS))
weights_q16 = st.one_of(
    st.integers(-2 * Q16_ONE, 2 * Q16_ONE),
    st.sampled_from([0, Q16_ONE // 4, Q16_ONE // 2, Q16_ONE, -Q16_ONE, ARG1_LIMIT, -ARG1_LIMIT, 3, -3, -1]),
)
scales = st.one_of(
    st.integers(-2 * Q16_ONE, 2 * Q16_ONE),
    st.sampled_from([0, 1, -2, Q16_ONE // 3, Q16_ONE // 2, 3 * Q16_ONE // 2, -Q16_ONE, SCALE_LIMIT, -SCALE_LIMIT, -1]),
)


#: The tests an element may have besides gap and run; each element draws a few.
TESTS = ("opcode", "symbol", "not_symbol", "classes", "all_classes", "none_classes", "mod", "at_start", "at_end")


@st.composite
def elements(draw, first: bool, merge: bool, n_transforms: int = 0, runs: bool = True, last: bool = False):
    """One pattern element with 0-2 of its tests (so patterns still match often), a gap and a run."""
    gap = 0 if first or merge else draw(st.sampled_from([0, 0, 1, 2, CAPS.gap]))
    run = 0 if merge or not runs else draw(st.sampled_from([0, 0, 1, 2, 3, CAPS.run]))
    tests = set(draw(st.lists(st.sampled_from(TESTS), max_size=2, unique=True)))
    fields: dict = {}
    if "opcode" in tests:
        fields["opcode"] = draw(st.sampled_from(OPCODES))
    if "symbol" in tests or "not_symbol" in tests:
        fields["symbol"] = draw(symbols)
        fields["not_symbol"] = "not_symbol" in tests
    for name in ("classes", "none_classes"):
        if name in tests:
            fields[name] = tuple(draw(st.lists(st.sampled_from(CLASSES), min_size=1, max_size=2, unique=True)))
    if "all_classes" in tests:  # pairs some tokens have (the, not), or any
        fields["all_classes"] = draw(st.one_of(st.sampled_from([("stop", "word"), ("neg", "word")]),
                                               st.lists(st.sampled_from(CLASSES), min_size=1, max_size=2,
                                                        unique=True).map(tuple)))
    if "mod" in tests:  # a transform some rewrite set, or none
        fields["mod"] = draw(st.one_of(st.just(min(1, n_transforms)), st.integers(0, n_transforms)))
    fields["at_start"] = "at_start" in tests
    fields["at_end"] = "at_end" in tests or (last and draw(st.integers(0, 5)) == 0)
    return PatternElement(gap=gap, run=run, **fields)


@st.composite
def updates(draw, n_transforms: int = 0):
    """What a rewrite does to one element's items: any mix of the five actions."""
    return ItemUpdate(
        opcode=draw(_maybe(WRITTEN_OPCODES, 2)),
        arg0=draw(_maybe(st.integers(0, N_ROWS - 1), 4)),
        arg1=draw(_maybe(weights_q16)),
        scale=draw(_maybe(scales, 2)),
        mod=draw(_maybe(st.one_of(st.just(min(1, n_transforms)), st.integers(0, n_transforms)), 2)),
    )


@st.composite
def rules(draw, index: int, reorder_only: bool = False, n_transforms: int = 0, guards: bool = True):
    """One rule: a rewrite, a merge or a guard; ``reorder_only`` rewrites only permute their items."""
    kinds = ["rewrite", "rewrite", "rewrite"] + ([] if reorder_only else ["merge", "merge"]) + (["guard"] * 2 if guards else [])
    kind = draw(st.sampled_from(kinds))
    mark = draw(st.one_of(st.none(), st.integers(0, MARK_BITS - 1), st.integers(0, 2)))
    score = draw(scores)
    if kind == "merge":
        k = draw(st.integers(2, PHRASE_WIDTH))
        # Loose tests, or no phrase would ever be spelled.
        pattern = tuple(draw(st.one_of(st.just(PatternElement()), elements(e == 0, True, n_transforms, last=e == k - 1)))
                        for e in range(k))
        ups = tuple(draw(st.lists(updates(n_transforms), max_size=1)))
        return Rule(f"r{index}", min(score, SCORE_MAX - MAX_BONUS), pattern, kind="merge", updates=ups, mark=mark)
    # Guards are short, so that they match what rewrites leave behind.
    k = draw(st.integers(1, 2 if kind == "guard" and draw(st.booleans()) else CAPS.pattern))
    runs = not reorder_only and draw(st.booleans())
    pattern = tuple(draw(elements(e == 0, False, n_transforms, runs, e == k - 1)) for e in range(k))
    if kind == "guard":
        # Guards that look for what rewrites write (an opcode other than ACC, a transform)
        # are the ones a rewrite can create: they make the health check revert.
        e = draw(st.integers(0, k - 1))
        written = draw(st.one_of(st.none(), WRITTEN_OPCODES.map(lambda o: ("opcode", o)),
                                 st.integers(min(1, n_transforms), n_transforms).map(lambda m: ("mod", m))))
        if written is not None:
            pattern = pattern[:e] + (replace(pattern[e], **{written[0]: written[1]}),) + pattern[e + 1:]
        return Rule(f"r{index}", score, pattern, kind="guard", mark=mark)
    has_run = any(el.run for el in pattern)
    if has_run:
        perm = draw(st.sampled_from([(), tuple(range(k))]))
    elif reorder_only or draw(st.booleans()):
        perm = tuple(draw(st.permutations(range(k))))
    else:
        perm = ()
    ups = () if reorder_only else tuple(draw(st.lists(updates(n_transforms), max_size=k)))
    return Rule(f"r{index}", score, pattern, kind="rewrite", perm=perm, updates=ups, mark=mark)


def _mirror(rule: Rule) -> tuple[PatternElement, ...]:
    """``rule``'s pattern with the opcode and mod tests of what it writes."""
    pattern = []
    for e, el in enumerate(rule.pattern):
        up = rule.updates[e] if e < len(rule.updates) else ItemUpdate()
        pattern.append(replace(el, opcode=el.opcode if up.opcode is None else up.opcode,
                               mod=el.mod if up.mod is None else up.mod))
    return tuple(pattern)


@st.composite
def algorithms(draw, reorder_only: bool = False, guards: bool = True, max_rules: int = 8):
    """A tiny Algorithm with random rules, transforms and loop parameters.

    ``guards=False`` leaves out guard rules (the health check never runs);
    ``reorder_only`` keeps to rewrites that only permute (and guards).
    """
    n_transforms = draw(st.sampled_from([0, 1, 3]))
    dim = draw(st.sampled_from([1, 8, 8, 33]))
    seed = draw(st.integers(0, 3))
    n = draw(st.integers(0, max_rules))
    rs = [draw(rules(i, reorder_only, n_transforms, guards)) for i in range(n)]
    # Some guards mirror a rewrite: they match exactly what it writes, so that rewrite
    # creates them and the health check has something to revert.
    for i, rule in enumerate(rs):
        sources = [r for r in rs if r.kind == "rewrite" and not r.perm and r.updates]
        if rule.kind == "guard" and sources and draw(st.booleans()):
            heavy = draw(st.one_of(st.integers(1, 1000), st.integers(1000, SCORE_MAX)))
            rs[i] = replace(rule, pattern=_mirror(draw(st.sampled_from(sources))), score=heavy)
    params = LoopParams(
        max_steps=draw(st.sampled_from([0, 1, 2, 4, 8, 12])),
        tolerance=draw(st.sampled_from([0, 0, 0, 5, 50, 300, TOLERANCE_MAX])),
        inhibit_steps=draw(st.integers(0, 4)),
    )
    return make_tiny(rules=tuple(rs), params=params, dim=dim, seed=seed, transforms=n_transforms)


#: Batches of texts over the tiny vocabulary, as strings and as token ids.
texts = st.lists(st.lists(st.sampled_from(WORDS[2:]), max_size=24).map(" ".join), min_size=1, max_size=6)
#: A word, or a whole lexicon phrase (so merges find something to merge).
_chunks = st.one_of(
    st.integers(0, len(WORDS) - 1).map(lambda t: [t]),
    st.integers(2, len(WORDS) - 1).map(lambda t: [t]),
    st.sampled_from([[token_id(w) for w in p] for p in PHRASES]),
)
#: Token streams of up to ``max_tokens`` (the default 24) tokens.
def token_streams(max_tokens: int = 24):
    return st.lists(_chunks, max_size=max_tokens).map(lambda cs: [t for c in cs for t in c][:max_tokens])


token_lists = st.lists(token_streams(), max_size=10)
