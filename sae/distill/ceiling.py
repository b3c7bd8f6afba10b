"""How much rules that imitate the teacher could add: per-text oracle weights.

Rules see a text's tokens only. The oracle sees the teacher's embedding of the very
text and gives every item of the text's program *without rules* the nonnegative weight
that brings the program's sum closest to it (nonnegative least squares, one text at a
time). In the second variant each item may also go through any of the Algorithm's
transforms (its plain and transformed vectors are all columns, so the oracle may even
split an item between them, which no rule can). No rules that scale items and send
them through these transforms (the bundled default's kinds: no merge into lexicon
phrases, whose vectors the oracle does not use, and no stack products) imitate the
teacher better on a text than its oracle does, so the oracle's Spearman is what such
rules could reach by imitation alone; rules that do better on a similarity benchmark
depart from the teacher toward its judgement (as the number rule does). An analysis,
not part of the engine: it needs scipy (``pip install 'sae[analysis]'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from sae.algorithm import Algorithm
from sae.distill.fit import annealed_items
from sae.engine import Engine
from sae.errors import InputError
from sae.evaluate import Pairs, cosine_rows, score_embeddings

INSTALL_HINT = "pip install 'sae[analysis]'"


@dataclass(frozen=True)
class CeilingRow:
    name: str
    spearman: float
    by_genre: dict[str, float]
    teacher_cosine: float  #: mean cosine of the texts' embeddings to the teacher's


@dataclass(frozen=True)
class TextItems:
    """One text's ``ACC`` items: weighted vectors ``(n, dim)`` and weights ``(n,)``."""

    vectors: np.ndarray
    weights: np.ndarray


def text_items(alg: Algorithm, token_ids: list[list[int]]) -> list[TextItems]:
    """Every text's annealed ``ACC`` items under ``alg``, each vector times its weight and
    passed through its transform (``T·(w x) + w t``), as the VM sums them."""
    items = annealed_items(alg, token_ids)
    dim = alg.dim
    w = alg.weights[items.row].astype(np.float64) * items.scale
    v = alg.vectors[items.row].astype(np.float64) * w[:, None]
    transforms = alg.transforms.astype(np.float64)
    for k in range(1, len(transforms) + 1):
        marked = items.mod == k
        v[marked] = v[marked] @ transforms[k - 1, :, :dim].T + w[marked, None] * transforms[k - 1, :, dim]
    order = np.argsort(items.doc, kind="stable")
    bounds = np.searchsorted(items.doc[order], np.arange(len(token_ids) + 1))
    return [TextItems(v[order[a:b]], w[order[a:b]]) for a, b in pairwise(bounds)]


def _columns(items: TextItems, transforms: np.ndarray | None) -> np.ndarray:
    """``(columns, dim)``: the items' vectors, and with ``transforms`` each through every transform."""
    if transforms is None or len(transforms) == 0:
        return items.vectors
    dim = items.vectors.shape[1]
    moved = [items.vectors @ T[:, :dim].T + items.weights[:, None] * T[:, dim] for T in transforms]
    return np.concatenate([items.vectors, *moved])


def oracle_sums(texts: list[TextItems], targets: np.ndarray, transforms: np.ndarray | None = None) -> np.ndarray:
    """``(n, dim)``: per text, the nonnegative combination of its items' vectors (and, with
    ``transforms`` ``(k, dim, dim + 1)``, of each item through every transform) closest to
    its row of ``targets`` in least squares. A text without items sums to zero."""
    try:
        from scipy.optimize import nnls
    except ImportError:
        raise InputError(f"the oracle ceiling needs scipy: {INSTALL_HINT}") from None
    out = np.zeros((len(texts), targets.shape[1]))
    for i, (items, target) in enumerate(zip(texts, targets)):
        if len(items.weights):
            X = _columns(items, transforms)  # noqa: N806  (the design matrix)
            coef, _ = nnls(X.T, target.astype(np.float64))
            out[i] = X.T @ coef
    return out


def ceiling(alg: Algorithm, pairs: Pairs, texts: list[str], teacher_embeddings: np.ndarray) -> list[CeilingRow]:
    """The teacher, the Algorithm with and without its rules, and the two oracles built on
    its rule-less programs, scored on ``pairs`` (``texts`` are their unique texts, in the
    order of ``teacher_embeddings``' rows)."""
    engine, bare = Engine(alg, backend="cpu"), alg.without_rules()
    teacher = np.asarray(teacher_embeddings, dtype=np.float64)
    plain = text_items(bare, engine.tokenize(texts))
    rows = [
        ("teacher", teacher),
        ("all rules", engine.embed(texts)),
        ("no rules", Engine(bare, backend="cpu").embed(texts)),
        ("oracle weights (no rules)", oracle_sums(plain, teacher)),
        ("oracle weights and transforms (no rules)", oracle_sums(plain, teacher, alg.transforms.astype(np.float64))),
    ]
    out = []
    for name, emb in rows:
        spearman, _, by_genre = score_embeddings(pairs, texts, emb)
        out.append(CeilingRow(name, spearman, by_genre, float(cosine_rows(emb, teacher).mean())))
    return out
