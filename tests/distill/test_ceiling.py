"""sae.distill.ceiling: per-text oracle weights over an Algorithm's rule-less programs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sae.distill.ceiling import ceiling, oracle_sums, text_items
from sae.engine import Engine
from sae.errors import InputError
from sae.evaluate import Pairs
from tests.tiny import SAMPLE_TEXTS, ids, make_tiny, parse

pytest.importorskip("scipy", reason="the oracle ceiling needs scipy (pip install 'sae[analysis]')")

RULES = parse(
    "rule scope score 90: [neg] [word !neg]+2 => set 1 mod=1\n"
    "rule soften score 40: [stop op=ACC] => set 0 scale=0.5\n"
)
TEXTS = SAMPLE_TEXTS


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_text_items_sum_to_the_engine_embeddings():
    alg = make_tiny(rules=RULES, transforms=1, seed=3)
    items = text_items(alg, [ids(t) for t in TEXTS])
    sums = np.stack([it.vectors.sum(axis=0) for it in items])
    np.testing.assert_allclose(_normalized(sums), Engine(alg, backend="cpu").embed(TEXTS), atol=2e-6)


def test_the_oracle_recovers_a_nonnegative_combination_of_the_items():
    alg = make_tiny(dim=16, seed=5)
    items = text_items(alg, [ids(t) for t in TEXTS])
    rng = np.random.default_rng(0)
    targets = np.stack([it.vectors.T @ rng.uniform(0.2, 3.0, len(it.weights)) for it in items])
    np.testing.assert_allclose(oracle_sums(items, targets), targets, atol=1e-9)


def test_the_oracle_is_never_further_from_the_target_than_the_programs_sum():
    """Every scaled plain sum is a feasible point, and so is every weights-only solution
    once transforms are columns too: each variant can only come closer."""
    alg = make_tiny(rules=RULES, transforms=2, seed=7)
    items = text_items(alg.without_rules(), [ids(t) for t in TEXTS])
    targets = np.random.default_rng(1).standard_normal((len(TEXTS), alg.dim))
    weights_only = oracle_sums(items, targets)
    with_transforms = oracle_sums(items, targets, alg.transforms.astype(np.float64))
    for it, t, a, b in zip(items, targets, weights_only, with_transforms):
        s = it.vectors.sum(axis=0)
        best_scaled = max(float(s @ t) / float(s @ s), 0.0) * s
        assert np.linalg.norm(a - t) <= np.linalg.norm(best_scaled - t) + 1e-9
        assert np.linalg.norm(b - t) <= np.linalg.norm(a - t) + 1e-9
    assert np.linalg.norm(with_transforms - targets) < np.linalg.norm(weights_only - targets)


def test_an_empty_text_sums_to_zero():
    alg = make_tiny(seed=2)
    items = text_items(alg, [[], ids("a dog runs")])
    assert len(items[0].weights) == 0
    out = oracle_sums(items, np.ones((2, alg.dim)))
    assert not out[0].any() and out[1].any()


def test_the_report_holds_the_teacher_the_algorithm_and_both_oracles():
    alg = make_tiny(rules=RULES, transforms=1, seed=3)
    texts = TEXTS
    pairs = Pairs("tiny", texts[:3], texts[3:], np.array([1.0, 3.0, 2.0]), ["captions"] * 3)
    teacher = _normalized(np.random.default_rng(4).standard_normal((len(texts), alg.dim)))
    rows = {r.name: r for r in ceiling(alg, pairs, texts, teacher)}
    assert list(rows) == ["teacher", "all rules", "no rules", "oracle weights (no rules)",
                          "oracle weights and transforms (no rules)"]
    assert rows["teacher"].teacher_cosine == pytest.approx(1.0)
    assert rows["oracle weights (no rules)"].teacher_cosine >= rows["no rules"].teacher_cosine
    assert (rows["oracle weights and transforms (no rules)"].teacher_cosine
            >= rows["oracle weights (no rules)"].teacher_cosine - 1e-12)
    assert set(rows["teacher"].by_genre) == {"captions"}


def test_without_scipy_the_oracle_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    alg = make_tiny(seed=2)
    with pytest.raises(InputError, match=r"scipy: pip install 'sae\[analysis\]'"):
        oracle_sums(text_items(alg, [ids("a dog runs")]), np.ones((1, alg.dim)))
