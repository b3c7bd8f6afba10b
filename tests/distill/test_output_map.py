# ruff: noqa: N803, N806  (matrix names follow the math: P, X)
"""sae.distill.output_map: the fitted output map and its fold into vectors and transforms."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from sae.algorithm import save_algorithm
from sae.distill.output_map import (
    CosineTargets,
    OutputMapSettings,
    _cosine_grad,
    check_linear,
    fit_output_map,
    fold_output_map,
    program_sums,
)
from sae.engine import Engine
from tests.tiny import SAMPLE_TEXTS, ids, make_tiny, parse

RULES = parse(
    "rule scope score 90: [neg] [word !neg]+2 => set 1 mod=1\n"
    "rule soften score 40: [stop op=ACC] => set 0 scale=0.5\n"
    "rule pushed score 30: [punct op=ACC] => set 0 op=PUSH\n"
)
TEXTS = SAMPLE_TEXTS


def _normalized(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_program_sums_are_the_engine_embeddings_before_normalization():
    alg = make_tiny(rules=RULES, transforms=1, seed=3)
    X = program_sums(alg, [ids(t) for t in TEXTS])
    got = Engine(alg, backend="cpu").embed(TEXTS)
    np.testing.assert_allclose(_normalized(X), got, atol=2e-6)


def test_a_folded_map_maps_every_embedding():
    """P folded into the vectors and (conjugated) transforms: the engine embeds P·x, rules or not."""
    alg = make_tiny(rules=RULES, transforms=1, seed=3)
    rng = np.random.default_rng(0)
    P = np.eye(alg.dim) + 0.3 * rng.standard_normal((alg.dim, alg.dim))
    X = program_sums(alg, [ids(t) for t in TEXTS])
    folded = fold_output_map(alg, P)
    np.testing.assert_allclose(Engine(folded, backend="cpu").embed(TEXTS), _normalized(X @ P.T), atol=1e-5)
    plain = program_sums(alg.without_rules(), [ids(t) for t in TEXTS])
    np.testing.assert_allclose(Engine(folded.without_rules(), backend="cpu").embed(TEXTS),
                               _normalized(plain @ P.T), atol=1e-5)


def test_a_program_that_multiplies_cannot_take_the_map():
    alg = make_tiny(rules=parse("rule times score 5: [word] [word] => set 0 op=PUSH; set 1 op=MUL"), seed=1)
    with pytest.raises(ValueError, match="rule 'times' writes MUL and rule 'times' writes PUSH"):
        check_linear(alg)
    with pytest.raises(ValueError, match="multiplies"):
        fold_output_map(alg, np.eye(alg.dim))


def test_mul_without_a_push_adds_and_takes_the_map():
    """No rule pushes, so MUL never finds a stack and adds like ACC (docs/ENGINE.md §5):
    the program is a sum, and the folded map maps every embedding."""
    alg = make_tiny(rules=parse("rule times score 5: [word] [word] => set 0 op=MUL scale=2.5"), seed=1)
    check_linear(alg)
    X = program_sums(alg, [ids(t) for t in TEXTS])
    np.testing.assert_allclose(_normalized(X), Engine(alg, backend="cpu").embed(TEXTS), atol=2e-6)
    as_acc = make_tiny(rules=parse("rule times score 5: [word] [word] => set 0 op=ACC scale=2.5"), seed=1)
    np.testing.assert_array_equal(X, program_sums(as_acc, [ids(t) for t in TEXTS]))
    assert not np.allclose(X, program_sums(alg.without_rules(), [ids(t) for t in TEXTS]))  # the rule fires
    P = np.eye(alg.dim) + 0.3 * np.random.default_rng(0).standard_normal((alg.dim, alg.dim))
    np.testing.assert_allclose(Engine(fold_output_map(alg, P), backend="cpu").embed(TEXTS),
                               _normalized(X @ P.T), atol=1e-5)


def test_the_gradient_is_the_loss_derivative():
    rng = np.random.default_rng(1)
    t = CosineTargets(rng.standard_normal((9, 4)), rng.standard_normal((9, 4)), rng.uniform(0, 1, 9))
    P = np.eye(4) + 0.2 * rng.standard_normal((4, 4))
    _, grad = _cosine_grad(P, t)
    numeric = np.zeros_like(P)
    for i in range(4):
        for j in range(4):
            step = np.zeros_like(P)
            step[i, j] = 1e-6
            numeric[i, j] = (_cosine_grad(P + step, t)[0] - _cosine_grad(P - step, t)[0]) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def _problem(seed: int = 0):
    """Pairs whose gold cosines come from a known map, and minimal pairs pinned to their cosines now."""
    rng = np.random.default_rng(seed)
    truth = np.eye(6) + 0.5 * rng.standard_normal((6, 6))
    a, b = rng.standard_normal((200, 6)), rng.standard_normal((200, 6))
    b = a + 0.7 * b  # similar pairs, so cosines spread over (0, 1)
    gold = (_normalized(a @ truth.T) * _normalized(b @ truth.T)).sum(1)
    ma, mb = rng.standard_normal((50, 6)), rng.standard_normal((50, 6))
    minimal = CosineTargets(ma, mb, (_normalized(ma) * _normalized(mb)).sum(1))
    return CosineTargets(a, b, gold), [minimal]


def test_the_fit_follows_the_gold_scores_and_keeps_the_minimal_pairs():
    gold, minimal = _problem()
    before_gold, _ = _cosine_grad(np.eye(6), gold)
    fit = OutputMapSettings(lam=0.01, pair_weight=0.0, steps=300, learning_rate=1e-2)
    loose = fit_output_map(gold, minimal, fit)
    assert _cosine_grad(loose, gold)[0] < 0.2 * before_gold  # the known map is within reach
    held = fit_output_map(gold, minimal, replace(fit, pair_weight=1.0))
    assert _cosine_grad(held, gold)[0] < 0.8 * before_gold
    assert _cosine_grad(held, minimal[0])[0] < 0.5 * _cosine_grad(loose, minimal[0])[0]  # the pair term holds them


def test_the_ridge_holds_the_map_near_the_identity_and_the_fit_is_deterministic():
    gold, minimal = _problem(1)
    firm = fit_output_map(gold, minimal, OutputMapSettings(lam=100.0, steps=100, learning_rate=1e-2))
    loose = fit_output_map(gold, minimal, OutputMapSettings(lam=0.0, steps=100, learning_rate=1e-2))
    assert np.linalg.norm(firm - np.eye(6)) < 0.5 * np.linalg.norm(loose - np.eye(6))
    again = fit_output_map(gold, minimal, OutputMapSettings(lam=100.0, steps=100, learning_rate=1e-2))
    assert firm.tobytes() == again.tobytes()


def test_pairs_with_a_zero_embedding_are_left_out():
    gold, minimal = _problem(2)
    a = gold.a.copy()
    a[:5] = 0
    P = fit_output_map(CosineTargets(a, gold.b, gold.target), minimal, OutputMapSettings(steps=20))
    assert np.isfinite(P).all()


@pytest.mark.parametrize("make_dir, message", [
    (lambda tmp: tmp / "missing", "missing"),
    (lambda tmp: save_algorithm(replace(make_tiny(rules=parse(
        "rule times score 5: [word] [word] => set 0 op=PUSH; set 1 op=MUL"), seed=1)), tmp / "mul"),
     "multiplies two vectors"),
])
def test_the_command_refuses_an_algorithm_it_cannot_map_in_one_line(tmp_path, make_dir, message):
    """Checked before any data is read: no ../shared is needed to get the error."""
    path = make_dir(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "sae", "distill", "--shared", str(tmp_path / "no-shared"),
                           "--output-map-of", str(path), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
