"""sae.distill.ablation: the variants that take rules away, and each rule's measured cost."""

from __future__ import annotations

import numpy as np

from sae.distill.ablation import RuleCost, ablate, rule_costs, variants
from sae.engine import Engine
from sae.evaluate import Pairs
from sae.profile import mean_cpu_ms
from tests.tiny import SAMPLE_TEXTS, make_tiny


def test_rule_costs_are_each_rules_match_and_footprints_over_the_anneal():
    alg = make_tiny()
    names = [r.name for r in alg.rules]
    scopes = {"anneal": 10.0, f"match {names[0]}": 2.0, f"footprint {names[0]}": 0.5, f"match {names[1]}": 1.0,
              "tokenize": 99.0}
    costs = rule_costs(alg, scopes)
    assert [c.name for c in costs] == names
    assert costs[0] == RuleCost(names[0], 2.0, 0.5, 0.25)
    assert costs[1] == RuleCost(names[1], 1.0, 0.0, 0.1)
    assert all(c == RuleCost(c.name, 0.0, 0.0, 0.0) for c in costs[2:])  # never matched: nothing spent
    assert all(c.share == 0.0 for c in rule_costs(alg, {f"match {names[0]}": 1.0}))  # no anneal timed


def test_mean_cpu_ms_times_every_rule_per_pass_and_detaches_the_profiler():
    alg = make_tiny()
    engine = Engine(alg, backend="cpu")
    texts = SAMPLE_TEXTS * 20
    ms = mean_cpu_ms(engine, texts, passes=3)
    assert engine.profiler is None
    assert {"tokenize", "widen", "anneal", "execute"} <= set(ms)
    assert {f"match {r.name}" for r in alg.rules} <= set(ms)
    assert 0 < sum(v for k, v in ms.items() if k.startswith(("match ", "footprint "))) <= ms["anneal"]
    costs = rule_costs(alg, ms)
    assert all(c.match_ms > 0 for c in costs) and 0 < sum(c.share for c in costs) <= 1


def test_ablate_measures_every_variant_and_no_rules_commits_nothing():
    alg = make_tiny()
    s1, s2 = SAMPLE_TEXTS[:3] * 2, SAMPLE_TEXTS[3:] * 2
    pairs = Pairs("tiny", s1, s2, np.linspace(0.0, 5.0, len(s1)))
    names = [name for name, _ in variants(alg)]
    assert names[:2] == ["all rules", "no rules"]
    assert [f"without {r.name}" for r in alg.rules] == [n for n in names if n.startswith("without ")]
    rows = ablate(alg, pairs)
    assert [v.name for v in rows] == names
    by = {v.name: v for v in rows}
    assert by["no rules"].committed == 0 and by["all rules"].committed > 0
    assert all(np.isfinite(v.spearman) for v in rows)
