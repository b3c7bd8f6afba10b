"""What each rule of an Algorithm adds, measured: the same Algorithm with rules taken away;
and what each costs on the numpy path: its matching and footprints, timed by the profiler.

Every variant keeps the vectors, transforms and lexicon, and changes only the rules
(or the health check's tolerance), so the differences are the rules' own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sae.algorithm import Algorithm
from sae.engine import Engine
from sae.evaluate import Pairs, evaluate
from sae.layout import TOLERANCE_MAX


@dataclass(frozen=True)
class Variant:
    name: str
    spearman: float
    teacher_cosine: float | None
    committed: int  #: rewrites committed embedding the pairs' texts
    reverted: int  #: rewrites the health check reverted


@dataclass(frozen=True)
class RuleCost:
    """One rule's time on the numpy path, per pass over some texts."""

    name: str
    match_ms: float  #: its matching, in every bid pass (the first, and each step's re-bid)
    footprint_ms: float  #: its candidates' footprints (rules with gaps or runs)
    share: float  #: of the anneal's time


def rule_costs(alg: Algorithm, scope_ms: dict[str, float]) -> list[RuleCost]:
    """Each rule's cost from the profiler's per-pass scope times (:func:`sae.profile.mean_cpu_ms`
    of a numpy-path engine of ``alg``), in rule order; a rule never matched costs 0."""
    anneal = scope_ms.get("anneal", 0.0)
    out = []
    for rule in alg.rules:
        match, foot = scope_ms.get(f"match {rule.name}", 0.0), scope_ms.get(f"footprint {rule.name}", 0.0)
        out.append(RuleCost(rule.name, match, foot, (match + foot) / anneal if anneal > 0 else 0.0))
    return out


def variants(alg: Algorithm) -> list[tuple[str, Algorithm]]:
    """The Algorithm, without rules, by kind of rule, each rule removed in turn, and without the health check."""
    kinds = {r.kind for r in alg.rules}
    out = [("all rules", alg), ("no rules", alg.without_rules())]
    if "merge" in kinds:
        out.append(("merges only", replace(alg, rules=tuple(r for r in alg.rules if r.kind == "merge"))))
        out.append(("no merges", replace(alg, rules=tuple(r for r in alg.rules if r.kind != "merge"))))
    if any(up.mod for r in alg.rules for up in r.updates):
        out.append(("no transform rules", replace(alg, rules=tuple(
            r for r in alg.rules if not any(up.mod for up in r.updates)))))
    if "guard" in kinds:
        out.append(("no guards", replace(alg, rules=tuple(r for r in alg.rules if r.kind != "guard"))))
        out.append(("health check off (tolerance max)", replace(alg, params=replace(alg.params,
                                                                                     tolerance=TOLERANCE_MAX))))
    for i, rule in enumerate(alg.rules):
        out.append((f"without {rule.name}", replace(alg, rules=alg.rules[:i] + alg.rules[i + 1 :])))
    return out


def ablate(alg: Algorithm, pairs: Pairs, teacher=None) -> list[Variant]:
    """Spearman (and cosine to the teacher, given one) of every variant of :func:`variants`."""
    rows = []
    for name, a in variants(alg):
        engine = Engine(a, backend="cpu")
        result = evaluate(engine, pairs, teacher)
        counts = engine.counters_snapshot()
        rows.append(Variant(name, result.spearman, result.teacher_cosine, counts.committed, counts.reverted))
    return rows
