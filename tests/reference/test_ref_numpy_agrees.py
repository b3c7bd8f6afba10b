"""numpy ≡ reference: the optimized CPU path decides exactly as the plain reading of docs/ENGINE.md.

Hand-written corner cases first (every one a case the reference's unit tests compute
by hand), then random Algorithms that use every feature of the rule language.
"""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import RULE_CASES, TEXTS, assert_backends_agree, assert_step_limit_is_the_algorithms
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, token_streams
from tiny import WORDS, ids, make_tiny, parse

from sae.algorithm import ItemUpdate, LoopParams, PatternElement, Rule, default_algorithm_path, load_algorithm
from sae.batch import ProgramBatch
from sae.cpu import CpuBackend
from sae.layout import DEFAULT_CAPACITIES, TOLERANCE_MAX, Capacities
from sae.reference import ReferenceBackend

CAPS = DEFAULT_CAPACITIES


def agree(alg, docs, caps=CAPS):
    return assert_backends_agree(CpuBackend(alg, caps), ReferenceBackend(alg, caps), alg, docs, caps)


def tokenized(alg, texts):
    return [e.ids for e in alg.tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_the_tiny_rules():
    alg = make_tiny()
    _, batch = agree(alg, tokenized(alg, TEXTS))
    assert batch.stats.committed > 20  # the fixture really rewrites


def test_the_tiny_rules_on_full_streams_and_a_small_journal():
    alg = make_tiny(dim=70)
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, len(WORDS), size=n).tolist() for n in (CAPS.stream, 1, 0, 37)]
    agree(alg, docs)
    agree(alg, tokenized(alg, TEXTS), Capacities(journal=4))


def test_the_bundled_default_on_the_demo_sentences():
    alg = load_algorithm()
    lines = (default_algorithm_path().parent / "demo_pairs.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    texts = [text for row in rows[:10] for text in row[5:7]]
    _, batch = agree(alg, tokenized(alg, texts))
    assert batch.stats.committed > 0


CASES = RULE_CASES


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("tolerance", [0, 45, TOLERANCE_MAX])
def test_hand_written_cases(name, tolerance):
    rules, texts = CASES[name]
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=tolerance, inhibit_steps=2),
                    transforms=2)
    agree(alg, [ids(t) for t in texts])


@pytest.mark.parametrize("update", [ItemUpdate(arg1=-1), ItemUpdate(scale=-1)])
def test_minus_one_is_a_value_not_keep(update):
    """The loader accepts arg1 and scale of -1 (ranges ±ARG1_LIMIT, ±SCALE_LIMIT); §4 applies them."""
    alg = make_tiny(rules=(Rule("r", 5, (PatternElement(),), updates=(update,)),))
    _, batch = agree(alg, [ids("cat")])
    assert batch.items[0, 0]["arg1"] == -1


# -- random Algorithms and token streams ---------------------------------------------------------

capacities = st.sampled_from([CAPS, CAPS, Capacities(journal=3), Capacities(stream=16, rules=8, journal=5)])


@settings(max_examples=200)
@given(algorithms(), st.lists(token_streams(24), max_size=6), capacities)
def test_random_algorithms_agree(alg, docs, caps):
    agree(alg, docs, caps)


@settings(max_examples=60)
@given(algorithms(), st.lists(token_streams(24), max_size=5), st.integers(0, 6))
def test_a_step_limit_stops_the_loop_as_a_lower_max_steps_would(alg, docs, max_steps):
    assert_backends_agree(CpuBackend(alg, CAPS), ReferenceBackend(alg, CAPS), alg, docs, CAPS, max_steps)
    for backend in (CpuBackend, ReferenceBackend):
        assert_step_limit_is_the_algorithms(backend, alg, docs, max_steps)


def test_a_step_limit_stops_the_tiny_rules_midway():
    alg = make_tiny(params=LoopParams(max_steps=8, tolerance=0, inhibit_steps=2))
    docs = tokenized(alg, TEXTS)
    for max_steps in range(4):
        cpu, _ = assert_backends_agree(CpuBackend(alg, CAPS), ReferenceBackend(alg, CAPS), alg, docs, CAPS, max_steps)
        assert cpu.stats.steps == max_steps  # the tiny rules still bid after three steps: the limit stopped them
        assert_step_limit_is_the_algorithms(CpuBackend, alg, docs, max_steps)


@pytest.mark.parametrize("backend", [CpuBackend, ReferenceBackend])
def test_a_negative_step_limit_is_refused(backend):
    alg = make_tiny()
    with pytest.raises(ValueError, match="max_steps must be >= 0, got -1"):
        backend(alg, CAPS).anneal(ProgramBatch(1, CAPS), -1)


@settings(max_examples=15)
@given(st.lists(st.lists(st.sampled_from(WORDS[2:]), max_size=30), min_size=1, max_size=8))
def test_random_texts_with_the_tiny_rules_agree(words):
    alg = make_tiny()
    agree(alg, tokenized(alg, [" ".join(w) for w in words]))


def test_extreme_accumulators_normalize_as_on_the_numpy_path():
    """Found by fuzzing: an acc of largest component ~1e-34 (or ~1e21), all finite, gave the
    reference the zero vector (its float32 squares underflowed, or overflowed) where the
    numpy path's float64 sum gives a unit vector."""
    from equivalence import executed, extreme_accumulators

    from sae.layout import EMBEDDING_TOLERANCE

    for name, alg, docs in extreme_accumulators():
        reference = executed(ReferenceBackend(alg, DEFAULT_CAPACITIES), alg, docs)[0]
        numpy_path = executed(CpuBackend(alg, DEFAULT_CAPACITIES), alg, docs)[0]
        assert np.linalg.norm(reference.astype(np.float64)) == pytest.approx(1, abs=1e-6), name
        assert np.abs(reference - numpy_path).max() <= EMBEDDING_TOLERANCE, name


def test_an_overflow_that_cancels_is_the_zero_vector_as_on_the_numpy_path():
    """+inf and -inf in one component of acc make its norm NaN: the numpy path (and WGSL)
    gave the zero vector, the reference a vector of NaN."""
    from equivalence import cancelled_overflow, executed

    alg, docs = cancelled_overflow()
    with np.errstate(over="ignore", invalid="ignore"):
        reference = executed(ReferenceBackend(alg, DEFAULT_CAPACITIES), alg, docs)
    assert not reference[0].any()
    assert not np.isfinite(reference[1]).all() and np.isfinite(reference[2]).all()
    agree(alg, docs)
