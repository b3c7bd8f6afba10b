"""The random Algorithms of tests/strategies.py are valid (they survive saving and loading unchanged)
and use every feature of the rule language."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import Phase, find, given, settings
from strategies import algorithms

from sae.algorithm import load_algorithm, save_algorithm
from sae.layout import ANY, ARG1_LIMIT, DEFAULT_CAPACITIES, TOLERANCE_MAX


@settings(max_examples=60)
@given(algorithms())
def test_random_algorithms_save_and_load_with_the_same_content_hash(alg):
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_algorithm(save_algorithm(alg, Path(tmp) / "alg", vector_dtype="float32"))
    assert loaded.rules == alg.rules
    assert loaded.params == alg.params
    assert loaded.content_hash == alg.content_hash


def _elements(alg):
    return [el for rule in alg.rules for el in rule.pattern]


def _updates(alg):
    return [up for rule in alg.rules for up in rule.updates]


#: Every feature of the v2 rule language, as a predicate on an Algorithm.
FEATURES = {
    "rewrite": lambda a: any(r.kind == "rewrite" for r in a.rules),
    "merge": lambda a: any(r.kind == "merge" for r in a.rules),
    "merge with an update": lambda a: any(r.kind == "merge" and r.updates for r in a.rules),
    "guard": lambda a: any(r.kind == "guard" for r in a.rules),
    "opcode test": lambda a: any(el.opcode != ANY for el in _elements(a)),
    "symbol test": lambda a: any(el.symbol != ANY and not el.not_symbol for el in _elements(a)),
    "negated symbol": lambda a: any(el.not_symbol for el in _elements(a)),
    "any classes": lambda a: any(el.classes for el in _elements(a)),
    "all classes": lambda a: any(len(el.all_classes) == 2 for el in _elements(a)),
    "none classes": lambda a: any(el.none_classes for el in _elements(a)),
    "mod test": lambda a: any(el.mod not in (ANY, 0) for el in _elements(a)),
    "mod test 0": lambda a: any(el.mod == 0 for el in _elements(a)),
    "at start": lambda a: any(el.at_start for el in _elements(a)),
    "at end": lambda a: any(el.at_end for el in _elements(a)),
    "gap": lambda a: any(el.gap == DEFAULT_CAPACITIES.gap for el in _elements(a)),
    "run": lambda a: any(el.run == DEFAULT_CAPACITIES.run for el in _elements(a)),
    "final run": lambda a: any(r.pattern[-1].run for r in a.rules),
    "perm": lambda a: any(r.perm and r.perm != tuple(range(len(r.perm))) for r in a.rules),
    "set opcode": lambda a: any(up.opcode is not None for up in _updates(a)),
    "set arg0": lambda a: any(up.arg0 is not None for up in _updates(a)),
    "set arg1": lambda a: any(up.arg1 == ARG1_LIMIT for up in _updates(a)),
    "scale": lambda a: any(up.scale is not None and up.scale < 0 for up in _updates(a)),
    "set mod": lambda a: any(up.mod for up in _updates(a)),
    "shared mark": lambda a: len({r.mark for r in a.rules}) < len(a.rules),
    "transforms": lambda a: a.n_transforms == 3,
    "tolerance 0": lambda a: a.params.tolerance == 0 and any(r.kind == "guard" for r in a.rules),
    "small tolerance": lambda a: 0 < a.params.tolerance < 100,
    "huge tolerance": lambda a: a.params.tolerance == TOLERANCE_MAX,
    "no inhibition": lambda a: a.params.inhibit_steps == 0,
    "no steps": lambda a: a.params.max_steps == 0,
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_random_algorithms_reach_every_feature(feature):
    alg = find(algorithms(), FEATURES[feature], settings=settings(max_examples=3000, database=None, phases=[Phase.generate]))
    assert FEATURES[feature](alg)
