# ruff: noqa: N803, N806  (matrix names follow the math: X, G, W, T)
"""The numeric fits of distillation: token and phrase vectors, then the VM's transforms.

Both fit what the runtime computes. Every training text is annealed by the engine
itself (the numpy path), so the fits see exactly the programs the VM will execute:
:func:`annealed_items` lists their ``ACC`` items. Then

* :func:`fit_vectors`: one ridge regression of the vectors of every symbol the data
  touches, from mean-pooled bags of items to the teacher's embeddings (tokens shrunk
  toward a prior, phrases toward the sum of their tokens);
* :func:`fit_transforms`: with the vectors fixed, one ridge regression of every
  transform ``[T | t]`` (shrunk toward the identity), from the items that carry it;
* :func:`refine_transforms`: from that solution, the same objective plus how far the
  cosines of minimal pairs (a sentence and its negation or role swap) miss the
  teacher's, by full-batch gradient descent. A least-squares fit of embeddings spends
  its error where the embeddings are large, not on the small differences the minimal
  pairs are about.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch, token_lengths
from sae.cpu import CpuBackend
from sae.layout import DEFAULT_CAPACITIES, Q16_ONE, F, Op, item_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Items:
    """The ``ACC`` items of annealed programs, one entry each (``NOP`` and stack items left out)."""

    doc: np.ndarray  # int64 document index
    symbol: np.ndarray  # int64
    row: np.ndarray  # int64 vector row (arg0)
    scale: np.ndarray  # float64 weight scale (arg1 / 65536)
    mod: np.ndarray  # int64 transform index (0 = none)
    tokens: np.ndarray  # (n_docs,) int64 tokens per document (at least 1)

    @property
    def n_docs(self) -> int:
        return len(self.tokens)


def annealed_items(alg: Algorithm, token_ids: list[list[int]], batch_size: int = 1024,
                   opcodes: tuple[int, ...] = (int(Op.ACC),)) -> Items:
    """Anneal every token list with ``alg`` (numpy path) and list the items of the results
    whose opcode is one of ``opcodes`` (the ``ACC`` items by default). Raises
    ``ValueError`` for a list longer than the stream capacity (cut it into windows first:
    :mod:`sae.windows`), which this used to truncate without a word."""
    caps = DEFAULT_CAPACITIES
    token_lengths(token_ids, caps, "annealed_items")
    backend = CpuBackend(alg, caps)
    batch = ProgramBatch(batch_size, caps)
    parts: list[tuple[np.ndarray, ...]] = []
    for start in range(0, len(token_ids), batch_size):
        chunk = token_ids[start : start + batch_size]
        batch.widen(chunk, alg.symbol_rows)
        backend.anneal(batch)
        n, length = batch.n, batch.max_length()
        words = item_words(batch.items)[:n, :length]
        live = (np.arange(length) < batch.lengths[:n, None]) & np.isin(words[..., F.OPCODE], opcodes)
        d, p = np.nonzero(live)
        w = words[d, p]
        parts.append((start + d, w[:, F.SYMBOL], w[:, F.ARG0], w[:, F.ARG1].view(np.int32), w[:, F.MOD]))
    cat = [np.concatenate(c) if parts else np.zeros(0) for c in zip(*parts)] if parts else [np.zeros(0)] * 5
    tokens = np.array([max(len(t), 1) for t in token_ids], dtype=np.int64)
    return Items(cat[0].astype(np.int64), cat[1].astype(np.int64), cat[2].astype(np.int64),
                 cat[3].astype(np.float64) / Q16_ONE, cat[4].astype(np.int64), tokens)


def bag(doc: np.ndarray, row: np.ndarray, coef: np.ndarray, n_docs: int, table: np.ndarray) -> np.ndarray:
    """``(n_docs, dim)``: per document, the sum of ``coef * table[row]``."""
    out = np.zeros((n_docs, table.shape[1]), dtype=np.float64)
    np.add.at(out, doc, coef[:, None] * table[row])
    return out


@dataclass(frozen=True)
class RidgeSettings:
    lam_token: float = 0.01  #: strength toward a token's prior vector
    lam_phrase: float = 0.3  #: strength toward a phrase's compositional vector (difference 0)
    lam_map: float = 1.0  #: ridge of the dim x dim prior map


def fit_vectors(
    n_symbols: int,
    vocab_size: int,
    design: tuple[np.ndarray, np.ndarray, np.ndarray],
    targets: np.ndarray,
    row_weight: np.ndarray,
    token0: np.ndarray,
    settings: RidgeSettings = RidgeSettings(),
) -> np.ndarray:
    """Joint ridge of token vectors and phrase differences; returns ``(n_symbols, dim)``.

    ``design`` is ``(doc, symbol, coef)`` entries (a phrase's entry and one per token
    of it, so phrase columns hold the *difference* to the sum of their tokens: add the
    sums back with :func:`phrase_vectors`). Tokens are shrunk toward their
    single-token teacher vector ``token0`` mapped into sentence space by a fitted
    ``dim x dim`` ridge map; symbols the data never touches keep that prior.
    """
    docs, rows, coefs = design
    n = targets.shape[0]
    V = vocab_size
    # 1. Prior map: mean bag of single-token teacher vectors -> teacher sentence vector.
    tok = rows < V
    X0 = bag(docs[tok], rows[tok], coefs[tok], n, token0)
    sw = np.sqrt(row_weight)[:, None]
    A = (X0 * sw).T @ (X0 * sw) + settings.lam_map * np.eye(token0.shape[1])
    W = np.linalg.solve(A, (X0 * sw).T @ (targets * sw))
    prior = np.zeros((n_symbols, token0.shape[1]))
    prior[:V] = token0 @ W
    # 2. Joint ridge on the columns the data touches.
    cols, local = np.unique(rows, return_inverse=True)
    U = cols.size
    log.info("ridge: %d rows, %d columns (%d phrases)", n, U, int((cols >= V).sum()))
    # Gram matrix from the sparse rows: pairs of entries of the same document.
    order = np.argsort(docs, kind="stable")
    d_s, l_s, c_s = docs[order], local[order], coefs[order] * np.sqrt(row_weight[docs[order]])
    bounds = np.flatnonzero(np.r_[True, d_s[1:] != d_s[:-1], True])
    ii, jj, vv = [], [], []
    for a, b in itertools.pairwise(bounds):
        li, ci = l_s[a:b], c_s[a:b]
        ii.append(np.repeat(li, b - a))
        jj.append(np.tile(li, b - a))
        vv.append(np.outer(ci, ci).ravel())
    flat = np.concatenate(ii) * U + np.concatenate(jj)
    G = np.bincount(flat, weights=np.concatenate(vv), minlength=U * U).reshape(U, U)
    rhs = np.zeros((U, targets.shape[1]))
    np.add.at(rhs, l_s, c_s[:, None] * (targets[d_s] * np.sqrt(row_weight[d_s])[:, None]))
    lam = np.where(cols < V, settings.lam_token, settings.lam_phrase)
    G[np.arange(U), np.arange(U)] += lam
    rhs += lam[:, None] * prior[cols]
    log.info("ridge: solving %dx%d", U, U)
    out = prior.copy()
    out[cols] = np.linalg.solve(G, rhs)
    return out


def phrase_vectors(fitted: np.ndarray, alg: Algorithm) -> np.ndarray:
    """Phrase rows of ``fitted`` (differences) plus the sum of their tokens' vectors."""
    V = alg.vocab_size
    out = fitted.copy()
    for k, row in enumerate(alg.phrases):
        out[V + k] += fitted[[int(t) for t in row if t >= 0]].sum(axis=0)
    return out


def vector_design(items: Items, alg: Algorithm, credit_tokens: bool = True) -> tuple[np.ndarray, ...]:
    """``(doc, symbol, coef)`` entries of mean-pooled bags; a phrase also credits its tokens."""
    coef = items.scale / items.tokens[items.doc]
    docs, syms, coefs = [items.doc], [items.symbol], [coef]
    V = alg.vocab_size
    if credit_tokens and alg.n_phrases:
        ph = items.symbol >= V
        table = alg.phrases[items.symbol[ph] - V]  # (P, width), -1 padded
        for col in range(table.shape[1]):
            used = table[:, col] >= 0
            docs.append(items.doc[ph][used])
            syms.append(table[used, col].astype(np.int64))
            coefs.append(coef[ph][used])
    return np.concatenate(docs), np.concatenate(syms), np.concatenate(coefs)


def transform_parts(items: Items, alg: Algorithm, n_transforms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of every document's mean-pooled program: ``base`` (items without a
    transform, ``(D, dim)``), ``A`` (per transform, the weighted sum of its items' vectors,
    ``(D, T, dim)``) and ``C`` (per transform, the sum of its items' weights, ``(D, T)``)."""
    D, dim = items.n_docs, alg.dim
    w = alg.weights[items.row].astype(np.float64) * items.scale / items.tokens[items.doc]
    vec = alg.vectors
    plain = items.mod == 0
    base = bag(items.doc[plain], items.row[plain], w[plain], D, vec)
    A = np.zeros((D, n_transforms, dim))
    C = np.zeros((D, n_transforms))
    for t in range(1, n_transforms + 1):
        sel = items.mod == t
        A[:, t - 1] = bag(items.doc[sel], items.row[sel], w[sel], D, vec)
        np.add.at(C[:, t - 1], items.doc[sel], w[sel])
    return base, A, C


def fit_transforms(
    items: Items, alg: Algorithm, targets: np.ndarray, n_transforms: int, lam: float, row_weight: np.ndarray
) -> np.ndarray:
    """``(n_transforms, dim, dim + 1)`` float32 ``[T | t]`` fitted so that the mean-pooled
    programs (vectors fixed, as ``alg`` packs them) match the teacher's ``targets``.

    One ridge regression: minimise ``Σ_d r_d ‖base_d + Σ_t (T_t A_dt + t_t C_dt) − y_d‖²
    + lam Σ_t (‖T_t − I‖² + ‖t_t‖²)``. Documents without a transformed item do not
    constrain the transforms and are skipped.
    """
    dim = alg.dim
    if n_transforms == 0:
        return np.zeros((0, dim, dim + 1), dtype=np.float32)
    base, A, C = transform_parts(items, alg, n_transforms)
    used = (C != 0).any(axis=1)
    log.info("transforms: %d of %d documents carry one", int(used.sum()), items.n_docs)
    sw = np.sqrt(row_weight[used])[:, None]
    Fm = np.concatenate([A[used].reshape(int(used.sum()), n_transforms * dim), C[used]], axis=1) * sw
    R = (targets[used] - base[used]) * sw
    M = Fm.T @ Fm
    M[np.diag_indices_from(M)] += lam
    prior = np.zeros((n_transforms * dim + n_transforms, dim))
    for t in range(n_transforms):
        prior[t * dim : (t + 1) * dim] = np.eye(dim)
    sol = np.linalg.solve(M, Fm.T @ R + lam * prior)
    out = np.zeros((n_transforms, dim, dim + 1), dtype=np.float32)
    out[:, :, :dim] = sol[: n_transforms * dim].reshape(n_transforms, dim, dim).transpose(0, 2, 1)
    out[:, :, dim] = sol[n_transforms * dim :]
    return out


@dataclass(frozen=True)
class RefineSettings:
    """:func:`refine_transforms`: the weight of the pair term and the optimiser (Adam, full batch)."""

    pair_weight: float = 30.0  #: mean squared cosine error of the pairs, against the ridge objective per document
    steps: int = 100
    learning_rate: float = 3e-3


def _cosines(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / (na * nb), na, nb


def refine_transforms(
    items: Items,
    alg: Algorithm,
    targets: np.ndarray,
    row_weight: np.ndarray,
    lam: float,
    pairs: np.ndarray,
    settings: RefineSettings = RefineSettings(),
) -> np.ndarray:
    """``alg``'s transforms (``[T | t]``, the :func:`fit_transforms` solution) refined so the
    cosines of ``pairs`` (``(P, 2)`` document indices) follow the teacher's ``targets``.

    Minimises ``(ridge objective of fit_transforms) / D + pair_weight · mean_p (cos_p −
    cos_teacher_p)²`` (``D``: the documents that carry a transformed item), starting
    from ``alg.transforms``; deterministic (fixed steps, no sampling). Returns float32
    ``(n, dim, dim + 1)``. Documents whose embedding is zero have no cosine: pairs with
    one are left out.
    """
    start = alg.transforms.astype(np.float64)
    n_tr, dim = start.shape[0], alg.dim
    if n_tr == 0 or len(pairs) == 0 or settings.steps <= 0 or settings.pair_weight <= 0:
        return alg.transforms.astype(np.float32)
    base, A, C = transform_parts(items, alg, n_tr)
    carries = (C != 0).any(axis=1)
    docs = np.unique(np.concatenate([np.asarray(pairs).ravel(), np.flatnonzero(carries)]))
    local = np.searchsorted(docs, pairs)
    B, Ad, Cd = base[docs], np.ascontiguousarray(A[docs]), C[docs]
    Y, r = targets[docs], row_weight[docs]
    n_docs = max(int(carries.sum()), 1)

    def embed(T: np.ndarray) -> np.ndarray:
        return B + sum(Ad[:, t] @ T[t, :, :dim].T for t in range(n_tr)) + Cd @ T[:, :, dim]

    X0 = embed(start)
    live = (np.linalg.norm(X0[local[:, 0]], axis=1) > 0) & (np.linalg.norm(X0[local[:, 1]], axis=1) > 0)
    ia, ib = local[live, 0], local[live, 1]
    teacher, _, _ = _cosines(Y[ia], Y[ib])
    identity = np.zeros_like(start)
    identity[:, :, :dim] = np.eye(dim)
    T, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, settings.steps + 1):
        X = embed(T)
        xa, xb = X[ia], X[ib]
        cos, na, nb = _cosines(xa, xb)
        g = 2 * settings.pair_weight * (cos - teacher) / len(ia)
        grad_x = 2 * r[:, None] * (X - Y) / n_docs
        np.add.at(grad_x, ia, g[:, None] * (xb / (na * nb)[:, None] - cos[:, None] * xa / (na**2)[:, None]))
        np.add.at(grad_x, ib, g[:, None] * (xa / (na * nb)[:, None] - cos[:, None] * xb / (nb**2)[:, None]))
        grad = 2 * lam * (T - identity) / n_docs
        for t in range(n_tr):
            grad[t, :, :dim] += grad_x.T @ Ad[:, t]
        grad[:, :, dim] += (grad_x.T @ Cd).T
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        T -= settings.learning_rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-12)
    X = embed(T)
    final, _, _ = _cosines(X[ia], X[ib])
    log.info("transforms refined on %d pairs: mean |cos - teacher| %.4f -> %.4f", len(ia),
             float(np.abs(_cosines(X0[ia], X0[ib])[0] - teacher).mean()), float(np.abs(final - teacher).mean()))
    return T.astype(np.float32)
