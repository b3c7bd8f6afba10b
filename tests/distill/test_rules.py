"""sae.distill.rules: which items each transform of the recipe's rules reaches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sae.algorithm import load_algorithm
from sae.distill.recipe import Config, with_finishing_rules
from sae.distill.rules import (
    CLAUSE,
    NEGATION_SCOPE,
    OBJECT,
    PREPOSITION,
    SUBJECT,
    RuleSettings,
    default_rules,
    finishing_rules,
)
from sae.engine import Engine

EVERY_SCOPE = RuleSettings(num_scale=1.0, stop_scale=1.0, punct_scale=1.0, subject=True, preposition=True,
                           clause=True)


def engine_with(rules_of) -> Engine:
    """The bundled tokenizer and token classes with ``rules_of(base)`` and identity transforms."""
    base = load_algorithm()
    names = EVERY_SCOPE.transform_names()
    identity = np.repeat(np.eye(base.dim, base.dim + 1, dtype=np.float32)[None], len(names), axis=0)
    alg = replace(base, rules=rules_of(base), transforms=identity, transform_names=names)
    return Engine(alg, backend="cpu")


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The recipe's scope rules."""
    return engine_with(lambda base: default_rules(EVERY_SCOPE))


def scopes(engine: Engine, text: str) -> dict[str, str]:
    """Each transform's name and the words that carry it after annealing."""
    x = engine.explain(text)
    names = engine.algorithm.transform_names
    out: dict[str, list[str]] = {}
    for symbol, mod in zip(x.symbols, x.final["mod"]):
        if mod:
            out.setdefault(names[int(mod) - 1], []).append(symbol)
    return {name: " ".join(words) for name, words in out.items()}


def test_transform_names_follow_the_settings():
    assert EVERY_SCOPE.transform_names() == (NEGATION_SCOPE, SUBJECT, OBJECT, PREPOSITION, CLAUSE)
    assert RuleSettings().transform_names() == (NEGATION_SCOPE, SUBJECT, OBJECT, PREPOSITION, CLAUSE)
    assert RuleSettings(subject=False, preposition=False, clause=False).transform_names() == (NEGATION_SCOPE, OBJECT)


def test_subject_and_object(engine):
    assert scopes(engine, "A young man is playing a guitar.") == {SUBJECT: "a young man", OBJECT: "a guitar"}
    assert scopes(engine, "He is playing a guitar.") == {SUBJECT: "he", OBJECT: "a guitar"}


def test_the_subject_starts_the_text(engine):
    # An auxiliary late in the text has no subject: the rule is anchored at the start.
    assert SUBJECT not in scopes(engine, "Yesterday in the park near the old lake a man is running.")


def test_preposition_and_second_clause(engine):
    assert scopes(engine, "The cat sat on the mat.") == {PREPOSITION: "the mat"}
    assert scopes(engine, "The cat sat and the dog ran.") == {CLAUSE: "the dog ran"}


def test_negation_keeps_its_scope(engine):
    got = scopes(engine, "The man is not playing the guitar.")
    assert got[NEGATION_SCOPE] == "playing the guitar"
    assert got[SUBJECT] == "the man"
    assert OBJECT not in got  # the object rule never takes items of a negation


def test_the_negation_scope_takes_at_most_its_span(engine):
    text = "The man is not playing the old red guitar in the park today."
    assert scopes(engine, text)[NEGATION_SCOPE] == "playing the old red guitar in the park"  # 8 items
    short = replace(engine.algorithm, rules=default_rules(replace(EVERY_SCOPE, negation_span=3)))
    assert scopes(Engine(short, backend="cpu"), text)[NEGATION_SCOPE] == "playing the old"


def test_subject_and_object_without_an_auxiliary(engine):
    assert scopes(engine, "A woman peels a potato.") == {SUBJECT: "a woman peel ##s", OBJECT: "a potato"}
    assert scopes(engine, "a potato peels A woman.") == {SUBJECT: "a potato peel ##s", OBJECT: "a woman"}
    # Not without a determiner at the start, nor when an auxiliary's subject rule applies.
    assert scopes(engine, "Woman peels a potato.") == {}
    assert scopes(engine, "A woman is peeling a potato.") == {SUBJECT: "a woman", OBJECT: "a potato"}


def test_soften_not_weighs_not_less_before_anything_but_a_verb():
    """"not" before an adjective or a phrase (mostly opinions, which the teacher barely moves
    when negated) weighs ``not_scale``; before a verb, after "does", and "no" keep their weight."""
    engine = engine_with(lambda base: default_rules(EVERY_SCOPE) + finishing_rules(0.6, base.tokenizer.token_to_id))
    assert engine.algorithm.rules[-1].name == "soften_not"

    def weight_of(text: str, word: str) -> float:
        x = engine.explain(text)
        return float(x.final["arg1"][x.symbols.index(word)]) / 65536

    assert weight_of("The man is not ready to go.", "not") == pytest.approx(0.6, abs=1e-4)
    assert weight_of("It is not all his fault.", "not") == pytest.approx(0.6, abs=1e-4)
    assert weight_of("The man is not playing the guitar.", "not") == 1.0
    assert weight_of("A woman does not peel a potato.", "not") == 1.0
    assert weight_of("There is no dog in the yard.", "no") == 1.0


def test_finishing_rules_are_appended_once_and_only_when_they_can_be_written():
    base = load_algorithm()
    plain = replace(base, rules=base.rules[:2])
    finished = with_finishing_rules(plain, Config())
    assert [r.name for r in finished.rules] == [r.name for r in plain.rules] + ["soften_not"]
    assert with_finishing_rules(finished, Config()) is finished  # already there: not a second time
    assert with_finishing_rules(plain, Config(not_scale=1.0)) is plain  # 1.0: no rule
    # A tokenizer that cannot spell "not" or "does" gets no rule rather than a broken one.
    assert finishing_rules(0.6, lambda word: None if word == "does" else 7) == ()


def test_a_finishing_rule_gets_a_mark_bit_no_rule_of_the_search_has():
    """By position it would take bit 2 here, the bit of the search's third rule: the two
    rules could then never both rewrite an item (docs/ENGINE.md §2)."""
    base = load_algorithm()
    searched = replace(base, rules=tuple(replace(rule, mark=mark) for rule, mark in zip(base.rules[:2], (0, 2))))
    finished = with_finishing_rules(searched, Config())
    assert [rule.mark for rule in finished.rules] == [0, 2, 1]
