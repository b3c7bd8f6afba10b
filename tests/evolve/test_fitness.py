"""Fitness: deterministic objectives, journal statistics, the validation stage."""

from __future__ import annotations

from dataclasses import replace

import pytest
from evolve_helpers import add_long_texts, build_world

from sae.algorithm import load_algorithm
from sae.evolve.data import build_eval_data
from sae.evolve.fitness import Evaluator, FitnessSettings
from sae.evolve.genome import Genome, genome_of


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("evolve-world"))


def test_objectives_are_reproducible(world):
    base = load_algorithm(world["base"])
    data = build_eval_data(base, world["teacher"], world["pairs"], 0, 0)
    assert len(data.fit) and len(data.valid) and len(data.minimal_fit)
    g = genome_of(base)
    one = Evaluator(base, data).evaluate(g.canonical())
    two = Evaluator(replace(base), data).evaluate(g.canonical())
    assert one.record() == two.record()
    obj = one.objectives
    assert obj["quality"] == round(obj["spearman"] - 0.5 * obj["minimal_error"], 10) or \
        abs(obj["quality"] - (obj["spearman"] - 0.5 * obj["minimal_error"])) < 1e-9
    assert obj["cost"] > 0 and obj["rules"] == len(g.rules)
    assert sum(c for c, _, _ in one.rule_stats.values()) > 0
    assert all(len(e) == 4 and e[0] < e[1] for e in one.edges)


@pytest.fixture(scope="module")
def long_world(world):
    return add_long_texts(world)


def test_long_texts_are_evaluated_in_windows_as_the_engine_embeds_them(long_world):
    """A text over the stream capacity is read whole, in windows, as Engine.embed reads it
    (it was cut to its first 128 tokens): the same embeddings, its rewrites past the cut
    counted, at their places in the whole text; and with fitted transforms too."""
    import numpy as np

    from sae import Engine

    base = load_algorithm(long_world["base"])
    data = build_eval_data(base, long_world["teacher_long"], long_world["pairs_long"], 0, 0)
    ev = Evaluator(base, data)
    texts = ev.stage_texts["fit"]
    ids = [t.tolist() for t in data.token_ids(texts)]
    long = np.array([len(t) > ev.caps.stream for t in ids])
    assert long.any() and (~long).any()
    alg = ev.algorithm(genome_of(base))
    run = ev._run(alg, texts)
    engine = Engine(alg, backend="cpu")
    assert run.emb.tobytes() == engine.embed_tokens(ids).tobytes()
    assert run.tokens.tolist() == [len(t) for t in ids]
    late = run.entries["pos"] >= ev.caps.stream
    assert late.any() and long[run.entries["doc"][late]].all()  # rewrites past the cut, in long texts only
    assert run.entries["doc"].max() < len(ids)
    one = ev.evaluate(genome_of(base).canonical())
    assert one.record() == Evaluator(base, data).evaluate(genome_of(base).canonical()).record()
    from tiny import parse

    g = Genome(parse("rule scope score 60 mark 1: [neg] [!punct]+4 => set 1 mod=1"), base.params)
    fitted = Evaluator(base, data, FitnessSettings(transforms="fit"))
    assert fitted.evaluate(g.canonical()).algorithm != Evaluator(base, data).evaluate(g.canonical()).algorithm


def test_no_rules_costs_nothing_and_valid_stage_differs(world):
    base = load_algorithm(world["base"])
    data = build_eval_data(base, world["teacher"], world["pairs"], 0, 0)
    ev = Evaluator(base, data)
    empty = Genome((), base.params)
    fit = ev.evaluate(empty.canonical(), "fit")
    valid = ev.evaluate(empty.canonical(), "valid")
    assert fit.objectives["cost"] == 0 and fit.rule_stats == {} and fit.edges == []
    assert fit.objectives != valid.objectives


def test_fitted_transforms_change_the_algorithm(world):
    base = load_algorithm(world["base"])
    data = build_eval_data(base, world["teacher"], world["pairs"], 0, 0)
    from tiny import parse

    g = Genome(parse("rule scope score 60 mark 1: [neg] [!punct]+4 => set 1 mod=1"), base.params)
    inherit = Evaluator(base, data).evaluate(g.canonical())
    fitted = Evaluator(base, data, FitnessSettings(transforms="fit")).evaluate(g.canonical())
    assert inherit.algorithm != fitted.algorithm


def _gpu_world(world):
    """The base and its evaluation data, or a skip (with the reason) where no GPU adapter runs sae."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu"))
    from gpu_helpers import gpu_skip_reason

    reason = gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    base = load_algorithm(world["base"])
    return base, build_eval_data(base, world["teacher"], world["pairs"], 0, 0)


def test_gpu_backend_evaluates_the_same_programs(world):
    """The evaluator on the wgpu backend: the same journals (rule statistics, cost) and
    objectives within float noise of the numpy path."""
    base, data = _gpu_world(world)
    g = genome_of(base).canonical()
    cpu = Evaluator(base, data).evaluate(g)
    gpu = Evaluator(base, data, FitnessSettings(backend="gpu")).evaluate(g)
    assert gpu.rule_stats == cpu.rule_stats and gpu.edges == cpu.edges
    assert gpu.objectives["cost"] == cpu.objectives["cost"]
    for k in ("quality", "spearman", "teacher", "minimal_error"):
        assert abs(gpu.objectives[k] - cpu.objectives[k]) < 1e-3, k


def test_minimal_error_weighs_each_kind_alike(world):
    """Per kind, then over kinds: one negation by "no" among many by "not" counts half."""
    import numpy as np

    from sae.evolve.data import PairSet

    base = load_algorithm(world["base"])
    data = build_eval_data(base, world["teacher"], world["pairs"], 0, 0)
    m = data.minimal_fit
    assert len(m) >= 4 and m.kind is not None and not m.kind.any()  # the tiny world has negations only

    def error(index: np.ndarray, kind: np.ndarray) -> float:
        subset = PairSet(m.a[index], m.b[index], m.teacher_cos[index], None, kind)
        return Evaluator(base, replace(data, minimal_fit=subset)).evaluate(genome_of(base).canonical()) \
            .objectives["minimal_error"]

    everything = np.arange(len(m))
    first, rest = error(everything[:1], np.zeros(1, np.int8)), error(everything[1:], np.zeros(len(m) - 1, np.int8))
    two_kinds = np.zeros(len(m), np.int8)
    two_kinds[0] = 1
    assert error(everything, two_kinds) == pytest.approx((first + rest) / 2, abs=1e-9)
    assert error(everything, m.kind) == pytest.approx((first + (len(m) - 1) * rest) / len(m), abs=1e-9)
    assert first != pytest.approx(rest)  # else the two averages could not tell the kinds apart


def test_minimal_error_weighs_each_phenomenon_alike(world):
    """Per kind, then over the kinds of a phenomenon, then over phenomena: two forms of
    negation together weigh what one form of order does."""
    import numpy as np

    from sae.evolve.data import MINIMAL_KINDS, MINIMAL_PHENOMENA, PairSet

    base = load_algorithm(world["base"])
    data = build_eval_data(base, world["teacher"], world["pairs"], 0, 0)
    m = data.minimal_fit
    assert len(m) >= 3

    def error(index: np.ndarray, kind: np.ndarray) -> float:
        subset = PairSet(m.a[index], m.b[index], m.teacher_cos[index], None, kind)
        return Evaluator(base, replace(data, minimal_fit=subset)).evaluate(genome_of(base).canonical()) \
            .objectives["minimal_error"]

    not_, no, order = (np.int8(MINIMAL_KINDS.index(k)) for k in ("negation", "negation_no", "order"))
    assert MINIMAL_PHENOMENA["negation"] == MINIMAL_PHENOMENA["negation_no"] != MINIMAL_PHENOMENA["order"]
    everything = np.arange(len(m))
    e0, e1 = (error(everything[i:i + 1], np.array([not_])) for i in (0, 1))
    e_rest = error(everything[2:], np.full(len(m) - 2, order))
    kinds = np.full(len(m), order)
    kinds[:2] = [not_, no]
    assert error(everything, kinds) == pytest.approx(((e0 + e1) / 2 + e_rest) / 2, abs=1e-9)
    assert ((e0 + e1) / 2 + e_rest) / 2 != pytest.approx((e0 + e1 + e_rest) / 3)  # kinds alone would differ


def test_gpu_population_evaluates_a_generation_in_few_submissions(world, monkeypatch):
    """On the GPU, evaluate_many runs the genomes as one population: the same evaluations
    as one genome at a time, in one submission per chunk of jobs instead of several round
    trips per batch and genome."""
    from tiny import parse

    base, data = _gpu_world(world)
    genomes = [genome_of(base).canonical(), Genome((), base.params).canonical(),
               Genome(parse("rule scope score 60 mark 1: [neg] [!punct]+4 => set 1 mod=1\n"
                            "rule st score 20: [stop] => set 0 scale=0.5"), base.params).canonical()]
    settings = FitnessSettings(backend="gpu")
    alone = [Evaluator(base, data, settings).evaluate(g, "fit") for g in genomes]
    together = Evaluator(base, data, settings)
    assert together.batches_genomes
    many = together.evaluate_many(genomes, "fit")
    for a, b in zip(alone, many):
        assert (a.genome, a.algorithm, a.objectives, a.rule_stats, a.edges) == \
            (b.genome, b.algorithm, b.objectives, b.rule_stats, b.edges)
    counters = together._population.backend.counters
    jobs = len(genomes) * len(together.stage_texts["fit"])
    assert counters.submissions == -(-jobs // together._population.backend.chunk) == counters.readbacks
    assert not Evaluator(base, data).batches_genomes  # numpy: one genome at a time
    # groups of genomes when the journals of all would be too many: the same evaluations
    monkeypatch.setattr("sae.evolve.fitness.POPULATION_JOBS", 2 * len(together.stage_texts["fit"]))
    grouped = Evaluator(base, data, settings)
    assert [g.record() for g in grouped.evaluate_many(genomes, "fit")] == [m.record() for m in many]
    assert grouped._population.backend.counters.submissions >= 2  # two groups: two calls at least


def test_gpu_population_takes_genomes_of_other_lexicons(world):
    """A genome whose lexicon choice drops phrases has other symbol tables than the base:
    evaluate_many runs it as a population of its own (it used to fail the whole generation),
    with the same evaluations as one genome at a time."""
    from tiny import parse

    base, data = _gpu_world(world)
    bonuses = sorted(set(base.phrase_bonus.tolist()))
    assert len(bonuses) >= 2, "the tiny base needs phrases of two bonuses"
    rules = parse("rule st score 20: [stop] => set 0 scale=0.5")
    genomes = [Genome(rules, base.params).canonical(),
               Genome(rules, base.params, min_bonus=bonuses[-1]).canonical(),  # drops phrases
               genome_of(base).canonical(),
               Genome((), base.params, min_bonus=bonuses[-1]).canonical()]
    settings = FitnessSettings(backend="gpu")
    alone = [Evaluator(base, data, settings).evaluate(g, "fit") for g in genomes]
    together = Evaluator(base, data, settings)
    assert [e.record() for e in together.evaluate_many(genomes, "fit")] == [e.record() for e in alone]
    assert len(together._subset_populations) == 1  # the two genomes of the smaller lexicon: one population
    populations = [together._population, *together._subset_populations.values()]
    together.close()  # LocalExecutor.close: the device buffers go with the run, not with the collector
    assert all(p.closed for p in populations) and not together._subset_populations
    assert [e.record() for e in together.evaluate_many(genomes, "fit")] == [e.record() for e in alone]  # made anew


def test_gpu_population_windows_long_texts(long_world):
    """Long texts on the GPU: the population evaluates them in windows as the numpy path
    does (the same journals and cost, objectives within float noise), alone or together."""
    from tiny import parse

    base, _ = _gpu_world(long_world)
    data = build_eval_data(base, long_world["teacher_long"], long_world["pairs_long"], 0, 0)
    genomes = [genome_of(base).canonical(),
               Genome(parse("rule st score 20: [stop] => set 0 scale=0.5"), base.params).canonical()]
    settings = FitnessSettings(backend="gpu")
    alone = [Evaluator(base, data, settings).evaluate(g, "fit") for g in genomes]
    many = Evaluator(base, data, settings).evaluate_many(genomes, "fit")
    cpu = [Evaluator(base, data).evaluate(g, "fit") for g in genomes]
    for a, b, c in zip(alone, many, cpu):
        assert a.record() == b.record()
        assert (b.rule_stats, b.edges, b.objectives["cost"]) == (c.rule_stats, c.edges, c.objectives["cost"])
        for k in ("quality", "spearman", "teacher"):
            assert abs(b.objectives[k] - c.objectives[k]) < 1e-3, k


def test_resampled_selection_scores_each_generation_on_its_subset(world):
    """--resample: generation g's quality is the quality of the same genome on g's subset
    of the fit pairs and fit minimal pairs alone; the subsets do not depend on how many
    generations the run has, and a run without them keeps its data digest."""
    import numpy as np

    from sae.evolve.data import PairSet, selection_subsets

    base = load_algorithm(world["base"])
    plain = build_eval_data(base, world["teacher"], world["pairs"], 0, 0)
    data = build_eval_data(base, world["teacher"], world["pairs"], 0, 0, resample=0.5, generations=3, seed=7)
    assert plain.fit_subsets is None and plain.digest() != data.digest()
    assert data.fit_subsets.shape == (3, len(data.fit))
    assert (data.fit_subsets.sum(axis=1) == round(0.5 * len(data.fit))).all()
    assert len({row.tobytes() for row in data.fit_subsets}) == 3
    assert np.array_equal(selection_subsets(len(data.fit), 0.5, 5, 7)[:3], data.fit_subsets)
    assert not np.array_equal(selection_subsets(len(data.fit), 0.5, 3, 8), data.fit_subsets)

    g = genome_of(base).canonical()
    ev = Evaluator(base, data).evaluate(g)
    assert ev.objectives == Evaluator(base, plain).evaluate(g).objectives  # the full-set figures are unchanged
    assert len(ev.subset_quality) == 3 and ev.record()["subset_quality"] == ev.subset_quality
    assert Evaluator(base, data).evaluate(g, "valid").subset_quality is None

    def take(ps: PairSet, keep: np.ndarray) -> PairSet:
        return PairSet(ps.a[keep], ps.b[keep], ps.teacher_cos[keep], None if ps.gold is None else ps.gold[keep],
                       None if ps.kind is None else ps.kind[keep])

    for gen in range(3):
        alone = replace(plain, fit=take(plain.fit, data.fit_subsets[gen]),
                        minimal_fit=take(plain.minimal_fit, data.minimal_subsets[gen]))
        quality = Evaluator(base, alone).evaluate(g).objectives["quality"]
        assert ev.subset_quality[gen] == pytest.approx(quality, abs=1e-9)
    assert ev.subset_quality[0] != pytest.approx(ev.objectives["quality"], abs=1e-6)
