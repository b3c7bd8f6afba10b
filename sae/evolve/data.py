"""The data fitness is measured on: train texts, their teacher embeddings, pairs.

Built once in the main process from the teacher file (and the STS pairs when given),
tokenized once with the base Algorithm's tokenizer, then shipped unchanged to every
worker (local processes or Ray): an :class:`EvalData` is plain numpy arrays, so
every evaluator sees exactly the same bytes.

Three pair sets (each pair: two text indices, the teacher's cosine, the gold score):

* **fit**: what selection sees. With ``--pairs``: the STS pairs whose index is not
  ``4 mod 5``, both sentences in the teacher file (capped at ``fit_pairs``, in a fixed
  order: SHA-256 of the pair's text). Without: pairs of teacher texts drawn in that
  same hash order.
* **valid**: the other fifth; only read when the final Algorithm is picked from the
  Pareto front (docs/EVOLVE.md), never by selection.
* **minimal**: minimal pairs (negated, roles swapped: the kinds reports measure,
  :func:`sae.distill.minimal_pairs.reported_pairs`, listed in :data:`MINIMAL_KINDS`)
  of teacher texts whose variant the teacher file also holds; every fifth (hash
  order) goes to validation; selection sees at most ``minimal_pairs / len(MINIMAL_KINDS)``
  of each kind (the first in hash order).

With ``--resample F`` the data also holds one **selection subset** per generation: a
random fraction F of the fit pairs and of the fit minimal pairs (drawn from the run's
seed and the generation), the pairs selection scores genomes on in that generation
(docs/EVOLVE.md, "Resampled selection").
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sae.algorithm import Algorithm
from sae.errors import InputError
from sae.evaluate import cosine_rows, read_pairs
from sae.teacher import read_teacher

log = logging.getLogger(__name__)

#: Each kind of minimal pair and the phenomenon it is a form of. The fitness averages the
#: error per kind, then over the kinds of each phenomenon, then over the phenomena: role swaps
#: are far fewer than negations, and a pooled mean would let a genome drop the order rule for
#: free; and negation and word order count alike whatever the number of forms each has
#: (averaged over the five kinds alone, the third form of negation took order's share from 1/2
#: to 2/5 and the search dropped the rule for roles without an auxiliary: docs/DISTILLATION.md,
#: "Negation without an auxiliary").
#: "not" after the auxiliary and "no" before a noun phrase are two kinds: the teacher moves
#: about 2.5 times as far for the second (1 − cos), and one transform fitted on the first missed
#: it by 0.11–0.18 on dev (docs/DISTILLATION.md, "Negation by no, roles without an auxiliary");
#: "does not" and "never" for a verb without an auxiliary are a third (docs/DISTILLATION.md,
#: "Negation without an auxiliary").
#: Role swaps around "is V-ing" and around a verb without an auxiliary are two kinds too: the
#: second are 82 of train's 574 swaps, and pooled with the first the search dropped their
#: rule (docs/EVOLVE.md). The "n't" form is not a kind: the tokenizer reads it as "not", so
#: its programs are the negation kind's (and the teacher file does not hold its variants).
MINIMAL_PHENOMENA = {"negation": "negation", "negation_no": "negation", "negation_plain": "negation",
                     "order": "order", "order_plain": "order"}
#: The kinds, in the order their ``PairSet.kind`` indexes them.
MINIMAL_KINDS = tuple(MINIMAL_PHENOMENA)


@dataclass(frozen=True)
class PairSet:
    """Pairs of text indices with the teacher's cosine and (STS pairs only) a gold score."""

    a: np.ndarray  # int64 text index
    b: np.ndarray  # int64 text index
    teacher_cos: np.ndarray  # float64
    gold: np.ndarray | None = None  # float64, None without gold scores
    kind: np.ndarray | None = None  # int8 per pair (minimal pairs: index into MINIMAL_KINDS)

    def __len__(self) -> int:
        return int(self.a.size)

    def texts(self) -> np.ndarray:
        return np.unique(np.concatenate([self.a, self.b]))


@dataclass(frozen=True)
class EvalData:
    """Pre-tokenized texts, the pair sets, and the transform-fit targets."""

    token_flat: np.ndarray  # int32, every text's token ids one after another (whole texts)
    token_offsets: np.ndarray  # int64 (n_texts + 1,)
    fit: PairSet
    valid: PairSet
    minimal_fit: PairSet
    minimal_valid: PairSet
    targets: np.ndarray = field(repr=False)  # (n_texts, dim) float32 teacher embeddings
    n_texts: int = 0
    fit_subsets: np.ndarray | None = None  # (generations, len(fit)) bool: what selection sees per generation
    minimal_subsets: np.ndarray | None = None  # (generations, len(minimal_fit)) bool

    def token_ids(self, index: np.ndarray) -> list[np.ndarray]:
        off = self.token_offsets
        return [self.token_flat[off[i] : off[i + 1]] for i in index]

    def digest(self) -> str:
        """SHA-256 of every array: equal digests, equal fitness values."""
        h = hashlib.sha256()
        arrays = [self.token_flat, self.token_offsets, self.targets]
        for ps in (self.fit, self.valid, self.minimal_fit, self.minimal_valid):
            arrays += [ps.a, ps.b, ps.teacher_cos] + ([ps.gold] if ps.gold is not None else [])
            # The minimal-pair error averages per kind: the labels are part of what it computes.
            arrays += [ps.kind] if ps.kind is not None else []
        if self.fit_subsets is not None:  # runs without resampling keep the digest they had
            arrays += [self.fit_subsets, self.minimal_subsets]
        for arr in arrays:
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()


def _order_key(*texts: str) -> str:
    return hashlib.sha256("\t".join(texts).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def selection_subsets(n: int, fraction: float, generations: int, seed: int, stream: int = 0) -> np.ndarray:
    """(generations, n) bool: in row g, ``round(fraction * n)`` (at least 2) of the n pairs,
    drawn without replacement by ``PCG64([seed, g, stream])`` — independent of everything else a run
    draws, so the subsets are the same however the run was interrupted."""
    out = np.zeros((generations, n), dtype=bool)
    k = min(n, max(2, round(fraction * n)))
    for g in range(generations):
        out[g, np.random.default_rng([seed, g, stream]).choice(n, size=k, replace=False)] = True
    return out


def first_of_each_kind(rows: list[tuple[str, str, int]], per_kind: int) -> list[tuple[str, str, int]]:
    """The first ``per_kind`` rows ``(text, variant, kind)`` of each kind, in their order.

    The fitness averages its error per kind, so each kind needs enough pairs of its own: a
    cap on the pooled list left about 16 of the 1,000 to the swaps without an auxiliary."""
    seen = [0] * len(MINIMAL_KINDS)
    out = []
    for row in rows:
        if seen[row[2]] < per_kind:
            seen[row[2]] += 1
            out.append(row)
    return out


def build_eval_data(
    base: Algorithm,
    teacher_path: str | Path,
    pairs_path: str | Path | None,
    fit_pairs: int,
    minimal_pairs: int,
    resample: float = 0.0,
    generations: int = 0,
    seed: int = 0,
) -> EvalData:
    """Read the teacher (and pairs), split and sample them, tokenize every text once; with
    ``resample`` > 0, draw the per-generation selection subsets (:func:`selection_subsets`).

    Raises :class:`InputError` (one line) when the files disagree: the teacher's
    dimension is not the base's, or no pair has both sentences in the teacher file.
    """
    from sae.distill.minimal_pairs import reported_pairs

    teacher = read_teacher(teacher_path, dim=base.dim)
    lookup = teacher.lookup()
    emb = np.asarray(teacher.embeddings)
    texts: dict[str, int] = {}

    def idx(t: str) -> int:
        return texts.setdefault(t, len(texts))

    def pair_set(rows: list[tuple[str, str, float | None]], kinds: list[int] | None = None) -> PairSet:
        a = np.array([idx(s1) for s1, _, _ in rows], dtype=np.int64)
        b = np.array([idx(s2) for _, s2, _ in rows], dtype=np.int64)
        ea = emb[[lookup[s1] for s1, _, _ in rows]] if rows else np.zeros((0, base.dim), np.float32)
        eb = emb[[lookup[s2] for _, s2, _ in rows]] if rows else np.zeros((0, base.dim), np.float32)
        has_gold = bool(rows) and rows[0][2] is not None
        gold = np.array([g for _, _, g in rows], dtype=np.float64) if has_gold else None
        kind = np.array(kinds, dtype=np.int8) if kinds is not None else None
        return PairSet(a, b, cosine_rows(ea, eb), gold, kind)

    if pairs_path is not None:
        pairs = read_pairs(pairs_path)
        usable = [(i, s1, s2, float(g)) for i, (s1, s2, g) in enumerate(zip(pairs.s1, pairs.s2, pairs.scores))
                  if s1 in lookup and s2 in lookup]
        if len(usable) < 10:
            raise InputError(f"{pairs_path}: only {len(usable)} of {len(pairs)} pairs have both sentences in the "
                             f"teacher file {teacher_path} (need at least 10)")
        fit_rows = sorted(((s1, s2, g) for i, s1, s2, g in usable if i % 5 != 4), key=lambda r: _order_key(r[0], r[1]))
        valid_rows = [(s1, s2, g) for i, s1, s2, g in usable if i % 5 == 4]
    else:
        # Teacher-only fitness: pairs of teacher texts in hash order (a text with the next one).
        uniq = sorted(dict.fromkeys(teacher.texts), key=_order_key)
        if len(uniq) < 20:
            raise InputError(f"{teacher_path}: {len(uniq)} distinct texts; teacher-only fitness needs at least 20")
        rows = [(uniq[i], uniq[i + 1], None) for i in range(0, len(uniq) - 1, 2)]
        fit_rows = [r for k, r in enumerate(rows) if k % 5 != 4]
        valid_rows = [r for k, r in enumerate(rows) if k % 5 == 4]
    if fit_pairs:
        fit_rows = fit_rows[:fit_pairs]
    if pairs_path is not None:
        # A Spearman correlation of either part would be undefined: the search would select,
        # or the final pick choose, on the minimal-pair error alone and say nothing.
        for part, part_rows in (("fit", fit_rows), ("validation (every fifth)", valid_rows)):
            scores = {g for _, _, g in part_rows}
            if len(scores) < 2:
                raise InputError(f"{pairs_path}: the {part} pairs whose sentences the teacher file {teacher_path} "
                                 f"holds are {len(part_rows)}, with {len(scores)} distinct gold score(s); their "
                                 "Spearman correlation needs two different scores")
    fit = pair_set(fit_rows)

    found = reported_pairs(list(dict.fromkeys(teacher.texts)))
    mp = sorted(((t, v, k) for k, kind in enumerate(MINIMAL_KINDS) for t, v in found[kind] if v in lookup),
                key=lambda r: _order_key(r[0], r[1]))
    if not mp:
        # The search then sees no negation or order at all, and nothing else would say so.
        log.warning("%s holds no minimal pair (a sentence and its negated or role-swapped variant, both "
                    "with embeddings): the fitness's minimal-pair error is 0, so the search cannot see negation "
                    "or word order; tools/evolve/train_teacher.py makes a teacher file with them", teacher_path)
    mp_fit = [r for k, r in enumerate(mp) if k % 5 != 4]
    mp_valid = [r for k, r in enumerate(mp) if k % 5 == 4]
    if minimal_pairs:
        mp_fit = first_of_each_kind(mp_fit, -(-minimal_pairs // len(MINIMAL_KINDS)))
    minimal_fit = pair_set([(t, v, None) for t, v, _ in mp_fit], [k for _, _, k in mp_fit])
    valid = pair_set(valid_rows)
    minimal_valid = pair_set([(t, v, None) for t, v, _ in mp_valid], [k for _, _, k in mp_valid])

    order = list(texts)
    ids = [np.asarray(t, dtype=np.int32) for t in base.token_ids(order)]  # whole: the evaluator windows long ones
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in ids])
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
    targets = np.ascontiguousarray(emb[[lookup[t] for t in order]], dtype=np.float32)
    subsets = minimal_subsets = None
    if resample > 0:
        subsets = selection_subsets(len(fit), resample, generations, seed)
        minimal_subsets = selection_subsets(len(minimal_fit), resample, generations, seed, stream=1)
    return EvalData(flat, offsets, fit, valid, minimal_fit, minimal_valid, targets, len(order), subsets,
                    minimal_subsets)


__all__ = ["MINIMAL_KINDS", "MINIMAL_PHENOMENA", "EvalData", "PairSet", "build_eval_data", "file_sha256", "first_of_each_kind", "selection_subsets"]
