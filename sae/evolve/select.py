"""Selection: non-dominated sorting and crowding (NSGA-II), tournaments, the Pareto front.

Objectives are ``quality`` (maximized) and ``cost`` (minimized). Survivors are the best
fronts, the last one cut by crowding distance (the spread along the front: the niches
at both ends and the sparse middle survive, so the population does not collapse onto
one genome); duplicates of a genome never take two places. Every tie is broken by the
genome key, so the order never depends on anything but the values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scored:
    """A genome key with its two objectives."""

    key: str
    quality: float
    cost: float


def dominates(a: Scored, b: Scored) -> bool:
    return (a.quality >= b.quality and a.cost <= b.cost) and (a.quality > b.quality or a.cost < b.cost)


def fronts(pop: list[Scored]) -> list[list[int]]:
    """Indices of ``pop`` by non-domination rank (front 0 first), each front sorted by key."""
    n = len(pop)
    dominated_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j and dominates(pop[i], pop[j]):
                beats[i].append(j)
                dominated_by[j] += 1
    out = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    while current:
        out.append(sorted(current, key=lambda i: pop[i].key))
        nxt = []
        for i in current:
            for j in beats[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current = nxt
    return out


def crowding(pop: list[Scored], front: list[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each member of ``front`` (inf at the ends)."""
    dist = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: float("inf") for i in front}
    for attr in ("quality", "cost"):
        order = sorted(front, key=lambda i: (getattr(pop[i], attr), pop[i].key))
        lo, hi = getattr(pop[order[0]], attr), getattr(pop[order[-1]], attr)
        dist[order[0]] = dist[order[-1]] = float("inf")
        if hi == lo:
            continue
        for left, mid, right in zip(order, order[1:], order[2:]):
            dist[mid] += (getattr(pop[right], attr) - getattr(pop[left], attr)) / (hi - lo)
    return dist


@dataclass(frozen=True)
class Ranked:
    """A survivor: its place, front and crowding distance."""

    key: str
    front: int
    crowding: float


def survivors(pop: list[Scored], size: int, distinct: bool = False) -> list[Ranked]:
    """The ``size`` best distinct genomes: by front, then crowding (larger first), then key.

    With ``distinct``, genomes of equal objectives (in practice: the same behaviour, a rule
    that never fires or never competes told apart only by its key) count as one: the
    smallest key of each is ranked, the others only fill places that distinct ones leave.
    """
    unique: dict[str, Scored] = {}
    for s in pop:
        unique.setdefault(s.key, s)
    pool = sorted(unique.values(), key=lambda s: s.key)
    if not distinct:
        return _ranked(pool)[:size]
    first = one_per_behaviour(pool)
    kept = {s.key for s in first}
    ranked = _ranked(first)
    offset = 1 + max((r.front for r in ranked), default=-1)
    rest = [Ranked(r.key, r.front + offset, r.crowding) for r in _ranked([s for s in pool if s.key not in kept])]
    return (ranked + rest)[:size]


def one_per_behaviour(pop: list[Scored]) -> list[Scored]:
    """The first of each set of equal objectives (quality, cost), in the order of ``pop``."""
    first: dict[tuple[float, float], Scored] = {}
    for s in pop:
        first.setdefault((s.quality, s.cost), s)
    return list(first.values())


def _ranked(pool: list[Scored]) -> list[Ranked]:
    ranked: list[Ranked] = []
    for f, front in enumerate(fronts(pool)):
        dist = crowding(pool, front)
        for i in sorted(front, key=lambda i: (-dist[i], pool[i].key)):
            ranked.append(Ranked(pool[i].key, f, dist[i]))
    return ranked


def better(a: Ranked, b: Ranked) -> Ranked:
    """The tournament winner: lower front, then larger crowding, then smaller key."""
    return min(a, b, key=lambda r: (r.front, -r.crowding, r.key))


def tournament(ranked: list[Ranked], rng: np.random.Generator) -> Ranked:
    i, j = rng.integers(len(ranked), size=2)
    return better(ranked[int(i)], ranked[int(j)])


def pareto_front(pop: list[Scored]) -> list[Scored]:
    """The non-dominated members of ``pop`` (distinct keys), best quality first."""
    unique = sorted({s.key: s for s in pop}.values(), key=lambda s: s.key)
    if not unique:
        return []
    front = [unique[i] for i in fronts(unique)[0]]
    return sorted(front, key=lambda s: (-s.quality, s.cost, s.key))


def diversity(rule_sets: list[frozenset[str]]) -> float:
    """Mean Jaccard distance between the rule sets of a population (0: all identical)."""
    n = len(rule_sets)
    if n < 2:
        return 0.0
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = rule_sets[i], rule_sets[j]
            union = len(a | b)
            total += 1.0 - (len(a & b) / union if union else 1.0)
    return total / (n * (n - 1) / 2)


__all__ = ["Ranked", "Scored", "crowding", "diversity", "fronts", "one_per_behaviour", "pareto_front", "survivors",
           "tournament"]
