"""Non-dominated sorting, crowding, survivors and the Pareto front."""

from __future__ import annotations

import math

import numpy as np

from sae.evolve.select import Scored, crowding, diversity, fronts, pareto_front, survivors, tournament


def test_fronts_and_crowding():
    pop = [Scored("a", 0.9, 5.0), Scored("b", 0.8, 1.0), Scored("c", 0.7, 0.5), Scored("d", 0.75, 2.0),
           Scored("e", 0.85, 3.0)]
    fs = fronts(pop)
    assert [[pop[i].key for i in f] for f in fs] == [["a", "b", "c", "e"], ["d"]]
    dist = crowding(pop, fs[0])
    assert math.isinf(dist[0]) and math.isinf(dist[2])  # the ends: best quality, lowest cost
    assert dist[1] > 0 and dist[4] > 0


def test_survivors_are_distinct_and_ordered():
    pop = [Scored("x", 0.5, 1.0), Scored("x", 0.5, 1.0), Scored("y", 0.6, 2.0), Scored("z", 0.4, 3.0)]
    ranked = survivors(pop, 3)
    assert [r.key for r in ranked] == ["x", "y", "z"] and ranked[2].front == 1
    assert survivors(list(reversed(pop)), 3) == ranked  # order of the input does not matter


def test_tournament_prefers_lower_front():
    ranked = survivors([Scored("a", 0.9, 1.0), Scored("b", 0.1, 9.0)], 2)
    rng = np.random.default_rng(0)
    wins = {tournament(ranked, rng).key for _ in range(50)}
    assert "a" in wins


def test_front_and_diversity():
    pop = [Scored("a", 0.9, 5.0), Scored("b", 0.8, 1.0), Scored("d", 0.75, 2.0)]
    assert [s.key for s in pareto_front(pop)] == ["a", "b"]
    assert diversity([frozenset("ab"), frozenset("ab")]) == 0.0
    assert diversity([frozenset("ab"), frozenset("cd")]) == 1.0


def test_distinct_survivors_keep_one_genome_per_behaviour():
    """Equal objectives count once (the smallest key); the copies only fill what is left."""
    pop = [Scored("b", 0.9, 1.0), Scored("a", 0.9, 1.0), Scored("c", 0.5, 0.5), Scored("d", 0.4, 2.0)]
    assert {r.key for r in survivors(pop, 3)} == {"a", "b", "c"}  # without: the copy takes d's place
    ranked = survivors(pop, 4, distinct=True)
    assert [r.key for r in ranked[:2]] in (["a", "c"], ["c", "a"])
    assert ranked[2].key == "d" and ranked[3].key == "b" and ranked[3].front > ranked[2].front
    assert [r.key for r in survivors(pop, 2, distinct=True)] == [r.key for r in ranked[:2]]
