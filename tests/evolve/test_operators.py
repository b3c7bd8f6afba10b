"""Mutation and crossover: seeded, valid, and crossover keeps interacting rules together."""

from __future__ import annotations

import numpy as np
from test_genome import space_of
from tiny import make_tiny, parse

from sae.evolve.genome import Genome, genome_of, normalized, rule_key
from sae.evolve.operators import MUTATIONS, crossover, interaction_components, mutate


def test_mutation_is_a_function_of_the_seed():
    base = make_tiny(transforms=1)
    space = space_of(base)
    g = genome_of(base)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(11)
        runs.append([mutate(g, rng, space) for _ in range(30)])
    assert [(c.key, op) for c, op in runs[0]] == [(c.key, op) for c, op in runs[1]]
    assert all(c.key != g.key for c, _ in runs[0])


def test_every_operator_changes_something():
    base = make_tiny(transforms=1)
    space = space_of(base)
    g = genome_of(base)
    rng = np.random.default_rng(5)
    for name, op, _ in MUTATIONS:
        changed = 0
        for _ in range(20):
            child = op(g, rng, space)
            if child is not None and normalized(child).key != g.key:
                changed += 1
        assert changed, name


def test_components_link_overlapping_rules_only():
    stats = {"a": [10, 0, 10], "b": [10, 0, 10], "c": [10, 0, 10], "d": [0, 0, 0]}
    rec = {"rule_stats": stats, "edges": [["a", "b", 10, 9], ["b", "c", 10, 0], ["c", "d", 0, 1]]}
    comps = interaction_components(["a", "b", "c", "d"], [rec])
    assert comps == [["a", "b"], ["c", "d"]]  # co-firing alone does not link; a rule that never fired does


def test_crossover_keeps_components_whole():
    params = make_tiny().params
    r = parse("""
        rule neg score 60 mark 1: [neg] [word] => set 1 scale=-1.0
        rule stop score 50 mark 2: [stop] [word] => set 0 scale=0.25
        rule punct score 40 mark 3: [punct] => set 0 scale=0.5
        rule num score 30 mark 4: [word] => set 0 scale=2.0
    """)
    a = normalized(Genome(r[:2], params))
    b = normalized(Genome(r[2:], params))
    ka, kb = rule_key(a.rules[0]), rule_key(a.rules[1])
    rec_a = {"rule_stats": {ka: [50, 0, 40], kb: [50, 0, 40]}, "edges": [[min(ka, kb), max(ka, kb), 40, 30]]}
    rec_b = {"rule_stats": {}, "edges": []}
    space = space_of(make_tiny())
    seen = set()
    for seed in range(40):
        child = crossover(a, b, rec_a, rec_b, np.random.default_rng(seed), space)
        if child is None:
            continue
        keys = {rule_key(x) for x in child.rules}
        assert (ka in keys) == (kb in keys), "linked rules were split"
        seen.add(frozenset(keys))
    assert len(seen) >= 3


def test_a_linear_space_never_writes_mul():
    """--linear: no chain of mutations writes MUL (every program stays a sum and takes an
    output map); the same chains in the full space do."""
    from dataclasses import replace

    from sae.distill.output_map import check_linear

    tiny = make_tiny(transforms=1)  # its own rules include a PUSH/MUL product: left out
    base = replace(tiny, rules=tuple(r for r in tiny.rules if all(up.opcode != 4 for up in r.updates)))
    assert len(base.rules) < len(tiny.rules)
    full = space_of(base)
    linear = replace(full, products=False)

    def writes_mul(space) -> int:
        rng = np.random.default_rng(3)
        count = 0
        for _ in range(40):
            g = genome_of(base)
            for _ in range(12):
                step = mutate(g, rng, space)
                if step is not None:
                    g = step[0]
            count += any(up.opcode is not None and up.opcode == 4 for r in g.rules for up in r.updates)
            if not space.products:
                check_linear(replace(base, rules=g.rules))
        return count

    assert writes_mul(full) > 0
    assert writes_mul(linear) == 0


def test_new_rules_keep_their_accumulate_tests_and_product_share_with_or_without_transforms():
    """A product rule tests ACC on both of its items, and a base without transforms gets
    no more products than one with them: the transform share falls to reweighting, not to
    products (it once did, and the product's ACC test was then overwritten)."""
    from dataclasses import replace

    from sae.evolve.operators import random_rule
    from sae.layout import Op

    with_transforms = space_of(make_tiny(transforms=1))
    shares = {}
    for space in (with_transforms, replace(with_transforms, n_transforms=0)):
        rng = np.random.default_rng(7)
        products = rewrites = 0
        for _ in range(3000):
            rule = random_rule(rng, space, set())
            if rule.kind != "rewrite":
                continue
            rewrites += 1
            if any(up.opcode == int(Op.PUSH) for up in rule.updates):
                products += 1
                assert rule.pattern[0].opcode == int(Op.ACC) and rule.pattern[1].opcode == int(Op.ACC)
            if not space.n_transforms:
                assert all(up.mod is None for up in rule.updates)
        shares[space.n_transforms] = products / rewrites
    assert 0.02 < shares[0] < 0.07 and abs(shares[0] - shares[1]) < 0.02
