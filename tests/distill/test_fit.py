# ruff: noqa: N806  (matrix names follow the math: A, C, T, X)
"""sae.distill.fit: the ridge fit of the transforms and its refinement on minimal pairs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sae.distill.fit import RefineSettings, annealed_items, fit_transforms, refine_transforms, transform_parts
from tests.tiny import ids, make_tiny, parse

SCOPE = parse("rule scope score 90: [neg] [word !neg]+2 => set 1 mod=1")
NOUNS = ("cat", "dog", "man", "woman", "food", "house")
VERBS = ("eats", "play", "runs")
ADJ = ("good", "bad", "big", "small", "red", "blue", "happy", "sad")


def sentences(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (sentence, its negation) pairs of tiny WORDS."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        subject, verb = rng.choice(NOUNS), rng.choice(VERBS)
        rest = " ".join(rng.choice(ADJ + NOUNS, size=rng.integers(1, 4)))
        out.append((f"the {subject} is {verb} {rest} .", f"the {subject} is not {verb} {rest} ."))
    return out


def problem(n: int = 120, noise: float = 0.0, seed: int = 0):
    """A tiny Algorithm whose one transform is the identity, documents, and teacher targets
    made by a known transform (plus ``noise``), as the recipe's fits see them."""
    truth = make_tiny(rules=SCOPE, transforms=1, seed=seed)
    start = replace(truth, transforms=np.eye(truth.dim, truth.dim + 1, dtype=np.float32)[None])
    texts = [t for pair in sentences(n, seed) for t in pair]
    token_ids = [ids(t) for t in texts]
    items = annealed_items(start, token_ids)
    base, A, C = transform_parts(items, truth, 1)
    T = truth.transforms[0].astype(np.float64)
    targets = base + A[:, 0] @ T[:, : truth.dim].T + C[:, :1] * T[:, truth.dim]
    targets += noise * np.random.default_rng(seed + 1).standard_normal(targets.shape)
    pairs = np.arange(len(texts)).reshape(-1, 2)
    return start, items, targets, pairs, truth


def pair_error(alg, items, transforms, targets, pairs) -> float:
    base, A, C = transform_parts(items, alg, 1)
    T = transforms[0].astype(np.float64)
    X = base + A[:, 0] @ T[:, : alg.dim].T + C[:, :1] * T[:, alg.dim]

    def cos(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    return float(np.abs(cos(X[pairs[:, 0]], X[pairs[:, 1]]) - cos(targets[pairs[:, 0]], targets[pairs[:, 1]])).mean())


def test_the_problem_has_transformed_items():
    _, items, *_ = problem()
    assert (items.mod == 1).sum() > 200  # every negated sentence marks its scope


def test_fit_transforms_recovers_the_transform_that_made_the_targets():
    start, items, targets, _, truth = problem()
    fitted = fit_transforms(items, start, targets, 1, 1e-6, np.ones(len(targets)))
    np.testing.assert_allclose(fitted, truth.transforms, atol=1e-3)


def test_refine_trades_embedding_error_for_pair_error():
    start, items, targets, pairs, _ = problem(noise=0.3)
    weights = np.ones(len(targets))
    ridge = fit_transforms(items, start, targets, 1, 0.3, weights)
    alg = replace(start, transforms=ridge)
    refined = refine_transforms(items, alg, targets, weights, 0.3, pairs, RefineSettings(30.0, 200, 1e-2))
    before = pair_error(start, items, ridge, targets, pairs)
    after = pair_error(start, items, refined, targets, pairs)
    assert after < 0.8 * before, (before, after)
    assert refined.dtype == np.float32 and refined.shape == ridge.shape


def test_refine_is_deterministic_and_off_without_steps_or_weight():
    start, items, targets, pairs, _ = problem(n=40, noise=0.3)
    weights = np.ones(len(targets))
    ridge = fit_transforms(items, start, targets, 1, 0.3, weights)
    alg = replace(start, transforms=ridge)
    settings = RefineSettings(10.0, 20, 1e-2)
    first = refine_transforms(items, alg, targets, weights, 0.3, pairs, settings)
    second = refine_transforms(items, alg, targets, weights, 0.3, pairs, settings)
    assert first.tobytes() == second.tobytes()
    assert not np.array_equal(first, ridge)
    for off in (RefineSettings(10.0, 0), RefineSettings(0.0, 20)):
        assert refine_transforms(items, alg, targets, weights, 0.3, pairs, off).tobytes() == ridge.tobytes()
    assert refine_transforms(items, alg, targets, weights, 0.3, pairs[:0], settings).tobytes() == ridge.tobytes()


def test_annealed_items_refuses_a_text_over_the_stream_capacity():
    """It used to keep the first 128 tokens without a word: a fit then saw part of a text
    against the teacher's embedding of all of it."""
    import pytest

    alg = make_tiny(rules=SCOPE, transforms=1)
    long = ids("the cat is good .") * 30
    with pytest.raises(ValueError, match=r"annealed_items: a text has 150 tokens, more than the stream capacity 128"):
        annealed_items(alg, [ids("the cat is good ."), long])
