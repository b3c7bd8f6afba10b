# ruff: noqa: N803, N806  (matrix names follow the math: P, T, A, C)
"""The output map: one linear map ``P`` of every embedding, fitted on STS-B train and folded
into the vectors and transforms (docs/DISTILLATION.md, "The output map").

The vectors and transforms are fitted to reproduce the teacher's embeddings; what the
similarity judgement weighs is not quite what the teacher's geometry weighs. ``P`` is
fitted so that ``cos(P·x_a, P·x_b)`` follows the train pairs' gold scores (``score / 5``),
while the minimal pairs of the train sentences keep following the teacher's cosines
(negation and word order) and ``P`` stays near the identity (ridge).

Every embedding is a sum of item vectors (docs/ENGINE.md §5) as long as no program
multiplies two (``MUL``), so ``P`` distributes over the sum: it becomes part of the data,
``vectors[row] ← P·vectors[row]`` and ``[T | t] ← [P T P⁻¹ | P t]``, and the engine is
unchanged (same cost, same semantics, same bytes on every backend). It applies whether
rules fire or not: it is not part of the rules, and "rules removed" keeps it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from sae.algorithm import Algorithm
from sae.distill.fit import annealed_items, transform_parts
from sae.layout import Op

log = logging.getLogger(__name__)

#: Opcodes that add their item's vector to the program's sum once (docs/ENGINE.md §5),
#: ``MUL`` included as long as no rule writes ``PUSH``: on an empty stack it is ``ACC``.
_SUMMED_OPS = (int(Op.ACC), int(Op.PUSH), int(Op.ADD), int(Op.MUL), int(Op.EMIT))


@dataclass(frozen=True)
class OutputMapSettings:
    """:func:`fit_output_map`: the ridge toward the identity, the minimal pairs' weight, the optimiser (Adam, full batch)."""

    lam: float = 0.5  #: ``lam · ‖P − I‖² / dim`` against the mean squared cosine errors
    pair_weight: float = 30.0  #: minimal pairs' mean squared cosine error (each kind alike) against the gold term
    steps: int = 200
    learning_rate: float = 1e-3


def check_linear(alg: Algorithm) -> None:
    """Raise ``ValueError`` when a program can multiply two vectors: a rule writes ``MUL``
    and a rule writes ``PUSH`` (only a pushed item gives ``MUL`` a stack to multiply; on
    an empty one it adds, like ``ACC``). The map would not distribute over the product."""
    writes: dict[int, str] = {}
    for rule in alg.rules:
        for up in rule.updates:
            if up.opcode is not None:
                writes.setdefault(int(up.opcode), rule.name)
    if int(Op.MUL) in writes and int(Op.PUSH) in writes:
        raise ValueError(f"rule {writes[int(Op.MUL)]!r} writes MUL and rule {writes[int(Op.PUSH)]!r} writes PUSH: "
                         "an output map folds into the vectors only when no program multiplies two vectors")


def program_sums(alg: Algorithm, token_ids: list[list[int]]) -> np.ndarray:
    """``(n, dim)`` float64: each text's embedding before normalization (mean-pooled; the
    scale does not change a cosine). Unless a program multiplies (:func:`check_linear`),
    every item but a ``NOP`` adds its ``w·x`` to the sum exactly once (docs/ENGINE.md §5)."""
    check_linear(alg)
    items = annealed_items(alg, token_ids, opcodes=_SUMMED_OPS)
    T = alg.transforms.astype(np.float64)  # (0, dim, dim + 1) when the Algorithm has none
    base, A, C = transform_parts(items, alg, len(T))
    dim = alg.dim
    return base + sum(A[:, t] @ T[t, :, :dim].T for t in range(len(T))) + C @ T[:, :, dim]


@dataclass(frozen=True)
class CosineTargets:
    """Pairs of embeddings before the map (``a``, ``b``: ``(n, dim)``) and the cosine each pair should have."""

    a: np.ndarray
    b: np.ndarray
    target: np.ndarray

    def live(self) -> CosineTargets:
        """Without the pairs that have a zero embedding (no cosine)."""
        ok = (np.linalg.norm(self.a, axis=1) > 0) & (np.linalg.norm(self.b, axis=1) > 0)
        return CosineTargets(self.a[ok], self.b[ok], self.target[ok])


def _cosine_grad(P: np.ndarray, t: CosineTargets) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared error of ``cos(P a, P b)`` against ``t.target``, and its gradient in ``P``."""
    ya, yb = t.a @ P.T, t.b @ P.T
    na, nb = np.linalg.norm(ya, axis=1), np.linalg.norm(yb, axis=1)
    cos = (ya * yb).sum(axis=1) / (na * nb)
    err = cos - t.target
    g = (2 * err / len(err))[:, None]
    d_ya = g * (yb / (na * nb)[:, None] - cos[:, None] * ya / (na**2)[:, None])
    d_yb = g * (ya / (na * nb)[:, None] - cos[:, None] * yb / (nb**2)[:, None])
    return float((err**2).mean()), d_ya.T @ t.a + d_yb.T @ t.b


def fit_output_map(gold: CosineTargets, minimal: list[CosineTargets],
                   settings: OutputMapSettings = OutputMapSettings()) -> np.ndarray:
    """``(dim, dim)`` float64 ``P`` minimizing ``mse(gold) + pair_weight · mean_k mse(minimal[k])
    + lam · ‖P − I‖² / dim`` from ``P = I``: deterministic (full batch, fixed steps)."""
    dim = gold.a.shape[1]
    gold = gold.live()
    if not len(gold.target):
        raise ValueError("the output map needs pairs with gold scores, and every pair has a zero embedding")
    minimal = [m.live() for m in minimal if len(m.target)]
    identity = np.eye(dim)
    P, m1, m2 = identity.copy(), np.zeros((dim, dim)), np.zeros((dim, dim))
    beta1, beta2 = 0.9, 0.999

    def loss_and_grad(P: np.ndarray) -> tuple[float, float, np.ndarray]:
        loss, grad = _cosine_grad(P, gold)
        pair_loss = 0.0
        for m in minimal:
            l_m, g_m = _cosine_grad(P, m)
            pair_loss += l_m / len(minimal)
            grad += settings.pair_weight / len(minimal) * g_m
        grad += 2 * settings.lam * (P - identity) / dim
        return loss, pair_loss, grad

    first = None
    for step in range(1, settings.steps + 1):
        loss, pair_loss, grad = loss_and_grad(P)
        first = first or (loss, pair_loss)
        m1 = beta1 * m1 + (1 - beta1) * grad
        m2 = beta2 * m2 + (1 - beta2) * grad**2
        P -= settings.learning_rate * (m1 / (1 - beta1**step)) / (np.sqrt(m2 / (1 - beta2**step)) + 1e-8)
    if first is not None:
        loss, pair_loss, _ = loss_and_grad(P)
        log.info("output map: gold cosine mse %.5f -> %.5f, minimal pairs %.5f -> %.5f, |P - I| %.3f",
                 first[0], loss, first[1], pair_loss, float(np.linalg.norm(P - identity)))
    return P


def fold_output_map(alg: Algorithm, P: np.ndarray) -> Algorithm:
    """``alg`` with ``P`` applied to every embedding: ``P`` on each vector row, each transform
    ``[T | t]`` conjugated to ``[P T P⁻¹ | P t]`` (it acts on the mapped rows)."""
    check_linear(alg)
    P = np.asarray(P, dtype=np.float64)
    vectors = (alg.vectors.astype(np.float64) @ P.T).astype(np.float32)
    T = alg.transforms.astype(np.float64)  # (0, dim, dim + 1) when the Algorithm has none
    transforms = np.concatenate([P @ T[:, :, :-1] @ np.linalg.inv(P), P @ T[:, :, -1:]], axis=2)
    return replace(alg, vectors=vectors, transforms=transforms.astype(np.float32))


__all__ = ["CosineTargets", "OutputMapSettings", "check_linear", "fit_output_map", "fold_output_map", "program_sums"]
