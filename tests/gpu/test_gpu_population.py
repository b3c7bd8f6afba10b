"""Population evaluation on the GPU: many Algorithms sharing tables, one token batch, few
submissions; each Algorithm's embeddings equal what it gives alone (numpy)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gpu_helpers import skip_without_gpu
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import rules as rule_strategy
from strategies import token_streams
from tiny import WORDS, make_tiny, parse

from sae.algorithm import LoopParams
from sae.cpu import CpuBackend
from sae.layout import DEFAULT_CAPACITIES, EMBEDDING_TOLERANCE
from sae.population import PopulationEvaluator, evaluate_population

skip_without_gpu()

CAPS = DEFAULT_CAPACITIES
BASE = make_tiny(transforms=2)


def _alone(alg, docs):
    lengths = np.array([len(d) for d in docs], dtype=np.uint32)
    return CpuBackend(alg, CAPS).submit_batch(docs, lengths).result().embeddings


def _population():
    return [
        BASE,
        replace(BASE, rules=parse('rule m2 score 120: [word] [] => merge; set 0 scale=1.5 mod=2\n'
                                  'rule g score 400: [mod=2] [word] => guard'), params=LoopParams(8, 0, 2)),
        replace(BASE, rules=()),
        replace(BASE, rules=parse('rule s score 9: [^ &stop &word] => set 0 mod=1\n'
                                  'rule n score 7: [!sym="cat" !stop neg] ~3 [word mod=0]+4 => set 1 mod=2 op=PUSH'),
                params=LoopParams(3, 5, 1)),
    ]


def _docs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, len(WORDS), size=int(rng.integers(0, 30))).tolist() for _ in range(n)]


def test_each_member_embeds_as_it_does_alone():
    docs = _docs(37)
    evaluator = PopulationEvaluator(BASE, backend="gpu", jobs=64)
    population = _population()
    for alg, rows in zip(population, evaluator.evaluate(population, docs)):
        assert np.abs(rows - _alone(alg, docs)).max() <= EMBEDDING_TOLERANCE


def test_few_submissions():
    """Documents x Algorithms share a grid: 4 Algorithms x 37 documents = 148 jobs fit two
    submissions of 100 jobs (37 documents, two Algorithms each)."""
    evaluator = PopulationEvaluator(BASE, backend="gpu", jobs=100)
    before = evaluator.backend.counters.submissions
    evaluator.evaluate(_population(), _docs(37))
    assert evaluator.backend.counters.submissions - before == 2


def test_runs_carry_each_members_journal():
    """With journals (what an evolutionary search reads): GPU == numpy per member, one
    submission per chunk of jobs."""
    docs = _docs(23, seed=5)
    gpu_evaluator = PopulationEvaluator(BASE, backend="gpu", jobs=50)
    before = gpu_evaluator.backend.counters.submissions
    gpu = gpu_evaluator.runs(_population(), docs)
    assert gpu_evaluator.backend.counters.submissions - before == 2  # 92 jobs in chunks of 46
    cpu = PopulationEvaluator(BASE, backend="cpu").runs(_population(), docs)
    assert len(gpu) == len(cpu) == len(_population())
    for c, g in zip(cpu, gpu):
        assert np.abs(c.embeddings - g.embeddings).max() <= EMBEDDING_TOLERANCE
        assert np.array_equal(c.journal_len, g.journal_len)
        assert c.journal.tobytes() == g.journal.tobytes()
    assert sum(int(g.journal_len.sum()) for g in gpu) > 20  # the members rewrite


def test_embedding_after_a_population_uses_the_backend_algorithm():
    evaluator = PopulationEvaluator(BASE, backend="gpu", jobs=64)
    docs = _docs(9, seed=2)
    evaluator.evaluate(_population()[1:], docs)
    lengths = np.array([len(d) for d in docs], dtype=np.uint32)
    rows = evaluator.backend.submit_batch(docs, lengths).result().embeddings
    assert np.abs(rows - _alone(BASE, docs)).max() <= EMBEDDING_TOLERANCE


def test_members_must_share_the_tables():
    other = make_tiny(seed=3)  # other vectors
    with pytest.raises(ValueError, match=r"population member 1 .* has other vectors"):
        evaluate_population([BASE, other], _docs(3), backend="gpu")
    with pytest.raises(ValueError, match="has other vectors"):
        evaluate_population([BASE, other], _docs(3), backend="cpu")


def test_cpu_and_gpu_evaluators_agree():
    docs, population = _docs(20, seed=4), _population()
    cpu = evaluate_population(population, docs, backend="cpu")
    gpu = evaluate_population(population, docs, backend="gpu")
    for c, g in zip(cpu, gpu):
        assert np.abs(c - g).max() <= EMBEDDING_TOLERANCE
    assert evaluate_population([], docs, backend="gpu") == []


@settings(max_examples=10)
@given(st.lists(st.lists(rule_strategy(0, n_transforms=2), max_size=4), min_size=1, max_size=5),
       st.lists(token_streams(20), min_size=1, max_size=8))
def test_random_populations(rule_sets, docs):
    population = [replace(BASE, rules=tuple(replace(r, name=f"r{i}") for i, r in enumerate(rules)))
                  for rules in rule_sets]
    results = PopulationEvaluator(BASE, backend="gpu", jobs=16).evaluate(population, docs)
    for alg, rows in zip(population, results):
        assert np.abs(rows - _alone(alg, docs)).max() <= EMBEDDING_TOLERANCE


def test_calls_from_two_threads_take_turns_and_close_waits_for_the_one_running():
    """Two threads evaluating on one GPU evaluator at once failed ('Buffer is already mapped',
    an AttributeError), and close() during a call released the buffers under it (a KeyError,
    a false "device lost", once an abort): now one call runs at a time and close() waits."""
    import threading

    population = _population()
    docs = [list(d) for d in ([4, 9, 10, 12, 30], [10, 11, 8, 19], [2, 16, 17, 18, 31, 9])] * 200
    with PopulationEvaluator(BASE, backend="gpu") as alone:
        want = [e.tobytes() for e in alone.evaluate(population, docs)]
    evaluator = PopulationEvaluator(BASE, backend="gpu")
    got: list = []

    def evaluate() -> None:
        try:
            got.append([e.tobytes() for e in evaluator.evaluate(population, docs)])
        except Exception as exc:  # reported below
            got.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(3)]
    for thread in threads:
        thread.start()
    evaluator.close()  # waits for the call that runs; the others then find it closed
    for thread in threads:
        thread.join(120)
    assert len(got) == 3
    finished = [g for g in got if not isinstance(g, Exception)]
    assert all(g == want for g in finished), "a call's results differ from the evaluator alone"
    assert all(isinstance(g, ValueError) and "closed" in str(g) for g in got if isinstance(g, Exception)), got
