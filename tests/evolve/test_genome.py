"""Genomes: canonical JSON, the canonical form, and that every genome the operators make
materializes as an Algorithm the loader accepts with the same content hash."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tiny import make_tiny, parse

from sae.algorithm import load_algorithm, save_algorithm
from sae.evolve.genome import Genome, genome_of, lexicon_subset, materialize, normalized, rule_to_json
from sae.evolve.operators import SearchSpace, crossover, mutate


def space_of(alg) -> SearchSpace:
    counts = np.arange(alg.vocab_size)[::-1].astype(np.int64)  # every token "seen"
    return SearchSpace.of(alg, counts, alg.n_transforms, max_rules=12)


def test_rule_json_is_the_algorithm_json():
    alg = make_tiny(transforms=1)
    g = genome_of(alg)
    assert [rule_to_json(r) for r in g.rules] == materialize(alg, g).to_json()["rules"]


def test_json_round_trip_and_key():
    g = genome_of(make_tiny())
    back = Genome.from_json(g.to_json())
    assert back == g and back.key == g.key and back.canonical() == g.canonical()


def test_normalized_is_canonical():
    rules = parse("""
        rule b score 50 mark 3: [stop] => set 0 scale=0.5
        rule a score 90 mark 1: [word] [word] => perm 1 0
        rule a2 score 90 mark 1: [word] [word] => perm 1 0
        rule c score 50 mark 2: [punct] => set 0 op=NOP; set 0 op=NOP
    """)
    g1 = normalized(Genome(rules, make_tiny().params))
    g2 = normalized(Genome(rules[::-1], make_tiny().params))
    assert g1 == g2 and normalized(g1) == g1
    assert len(g1.rules) == 3  # the duplicate (same content, other name) is dropped
    assert [r.score for r in g1.rules] == sorted((r.score for r in g1.rules), reverse=True)


def test_lexicon_subset_renumbers_phrases():
    alg = make_tiny()
    top = int(alg.phrase_bonus.max())
    cut = lexicon_subset(alg, top)
    assert 0 < cut.n_phrases < alg.n_phrases
    assert cut.vocab_size == alg.vocab_size
    kept = alg.phrase_bonus >= top
    assert (cut.symbol_rows[cut.vocab_size :] == alg.symbol_rows[alg.vocab_size :][kept]).all()


def test_operator_genomes_load_back_identically(tmp_path):
    """Hundreds of genomes from chains of mutations and crossovers: each one saved and loaded
    by the real loader gives the same Algorithm (content hash)."""
    base = make_tiny(transforms=2)
    space = space_of(base)
    rng = np.random.default_rng(3)
    pool = [genome_of(base), Genome((), base.params)]
    record = {"rule_stats": {}, "edges": []}
    checked = 0
    for i in range(300):
        a = pool[int(rng.integers(len(pool)))]
        if i % 5 == 0 and len(pool) > 1:
            b = pool[int(rng.integers(len(pool)))]
            child = crossover(a, b, record, record, rng, space)
        else:
            m = mutate(a, rng, space)
            child = m[0] if m else None
        if child is None:
            continue
        pool.append(child)
        if i % 3 == 0:
            alg = materialize(base, child)
            back = load_algorithm(save_algorithm(alg, tmp_path / f"g{i}", vector_dtype="float32"))
            assert back.content_hash == alg.content_hash, child.canonical()
            checked += 1
    assert checked > 80
    kinds = {r.kind for g in pool for r in g.rules}
    assert kinds == {"merge", "rewrite", "guard"}
    assert any(el.run for g in pool for r in g.rules for el in r.pattern)
    assert any(up.mod for g in pool for r in g.rules for up in r.updates)
    assert len({g.min_bonus for g in pool}) > 1 and len({g.params for g in pool}) > 1


def test_materialize_keeps_base_data():
    base = make_tiny(transforms=1)
    g = replace(genome_of(base), rules=())
    alg = materialize(base, g)
    assert alg.rules == () and alg.vectors is base.vectors and alg.transforms is base.transforms


def test_simplifications_unset_each_opcode_and_reset_each_changed_parameter():
    from sae.evolve.genome import simplifications

    alg = make_tiny(transforms=1)
    g = normalized(Genome(genome_of(alg).rules + parse("rule p score 10: [neg] [neg] => set 0 op=PUSH"),
                          replace(alg.params, tolerance=777), 0))
    found = simplifications(g, alg.params)
    opcodes = sum(1 for r in g.rules for u in r.updates if u.opcode is not None)
    assert len(found) == opcodes + 1  # one per opcode an update sets, and the tolerance
    assert found[-1][0] == "tolerance 777 (the base's 0)" and found[-1][1].params == alg.params
    for what, simpler in found[:-1]:
        assert "op=" in what and simpler.params == g.params and simpler.key != g.key
        assert sum(1 for r in simpler.rules for u in r.updates if u.opcode is not None) == opcodes - 1
    assert simplifications(Genome((), alg.params, 0), alg.params) == []


def test_rule_removals_drop_each_rule_once():
    from sae.evolve.genome import rule_key, rule_removals

    g = genome_of(make_tiny(transforms=1))
    found = rule_removals(g)
    assert [what for what, _ in found] == [f"rule {r.name}" for r in g.rules]
    for rule, (_, without) in zip(g.rules, found, strict=True):
        assert {rule_key(r) for r in without.rules} == {rule_key(r) for r in g.rules} - {rule_key(rule)}
        assert without.params == g.params and without.min_bonus == g.min_bonus
    assert rule_removals(Genome((), g.params, 0)) == []
