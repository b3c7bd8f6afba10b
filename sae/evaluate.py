"""STS-style evaluation: Spearman correlation of cosine similarity with gold scores.

Pairs are read in the STS Benchmark layout: tab-separated lines ``genre, file,
year, id, score, sentence 1, sentence 2`` (some lines carry extra columns after
those seven), split on tabs with **no** quote handling — sentences contain quote
characters. Spearman is computed with numpy (average ranks for ties).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sae.errors import InputError
from sae.io import decode_utf8, existing_file, stdin_bytes

if TYPE_CHECKING:
    from sae.teacher import TeacherTable


@dataclass(frozen=True)
class Pairs:
    """Sentence pairs with gold similarity scores."""

    path: str
    s1: list[str]
    s2: list[str]
    scores: np.ndarray  # float64
    genres: list[str] = field(default_factory=list)  #: one per pair, or none

    def __post_init__(self) -> None:
        # Checked here, naming the lengths: a mismatch otherwise fails deep in numpy, or (genres)
        # silently gives no per-genre figures; no pairs gives NaN and numpy's warnings.
        for name in ("s1", "s2", "genres"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
                raise TypeError(f"Pairs.{name} must be a list of str, got {type(value).__name__}")
        scores = np.asarray(self.scores, dtype=np.float64)  # the same array when it is float64 already
        if scores.ndim != 1:
            raise ValueError(f"Pairs.scores must be one-dimensional, got shape {scores.shape}")
        object.__setattr__(self, "scores", scores)
        if not len(self.s1) == len(self.s2) == len(scores):
            raise ValueError(f"Pairs: s1, s2 and scores differ in length ({len(self.s1)}, {len(self.s2)}, "
                             f"{len(scores)})")
        if self.genres and len(self.genres) != len(scores):
            raise ValueError(f"Pairs: {len(self.genres)} genres for {len(scores)} pairs (give one per pair, or none)")
        if not len(scores):
            raise ValueError("Pairs: no pairs (a correlation of none is undefined)")
        if not np.isfinite(scores).all():  # as read_pairs refuses them: a correlation with them is NaN
            raise ValueError(f"Pairs.scores: score {scores[~np.isfinite(scores)][0]} of pair "
                             f"{int(np.flatnonzero(~np.isfinite(scores))[0])} is not finite")

    def __len__(self) -> int:
        return len(self.s1)

    def unique_texts(self) -> list[str]:
        """Every distinct sentence, in order of first appearance."""
        return list(dict.fromkeys([*self.s1, *self.s2]))


def read_pairs(path: str | Path) -> Pairs:
    """Read an STS Benchmark style file, or standard input for ``-`` (as ``sae embed`` and
    ``sae teach`` read theirs); one-line :class:`InputError` on bad input."""
    name = str(path)
    if name == "-":
        name = "<stdin>"  # as the corpus reader names it
        text = decode_utf8(stdin_bytes().read(), name)
    else:
        try:
            data = existing_file(path, "an STS pairs file").read_bytes()
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
        text = decode_utf8(data, name)
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    genres: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 7:
            raise InputError(
                f"{name}: line {number}: {len(cols)} tab-separated column(s), expected at least 7 "
                "(genre, file, year, id, score, sentence 1, sentence 2)"
            )
        try:
            # Python's float() reads "1_0" as 10 and Arabic-Indic or full-width digits as
            # theirs: not how a data file writes a number.
            if "_" in cols[4] or not cols[4].isascii():
                raise ValueError
            score = float(cols[4])
        except ValueError:
            raise InputError(f"{name}: line {number}: score {cols[4]!r} is not a number") from None
        if not np.isfinite(score):
            raise InputError(f"{name}: line {number}: score {cols[4]!r} is not finite")
        genres.append(cols[0])
        scores.append(score)
        s1.append(cols[5])
        s2.append(cols[6])
    if len(scores) < 2:
        raise InputError(f"{name}: {len(scores)} pair(s); at least 2 are needed for a correlation")
    return Pairs(name, s1, s2, np.asarray(scores, dtype=np.float64), genres)


def read_shared_split(shared: str | Path, split: str) -> tuple[Pairs, TeacherTable]:
    """The STS-B ``split`` (``"train"`` or ``"dev"``) of the shared data (``SHARED/data``)
    and its teacher file: ``(Pairs, TeacherTable)``. Raises :class:`InputError` naming a
    missing or bad file."""
    from sae.teacher import read_teacher

    data = Path(shared) / "data"
    return (read_pairs(data / f"stsb/sts-{split}.csv"),
            read_teacher(data / f"teacher/teacher-minilm-{split}.parquet"))


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``; ties get the average of the ranks they span."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Start of every run of equal values.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]  # exclusive
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson of average ranks); NaN when a side is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman: shapes differ {a.shape} vs {b.shape}")
    return pearson(rankdata(a), rankdata(b))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation; NaN when a side is constant."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:  # unchecked, one value broadcast to NaN and unequal lengths failed in numpy
        raise ValueError(f"pearson: shapes differ {x.shape} vs {y.shape}")
    # The means of the inputs as given (of a float32 array, in float32), as before: the same numbers.
    if x.size and (x.min() == x.max() or y.min() == y.max()):  # constant: the mean need not be exact
        return float("nan")
    a = x - np.mean(a)
    b = y - np.mean(b)
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row pair (0 where a row is zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    denom = na * nb
    return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)


@dataclass(frozen=True)
class EvalResult:
    """Figures of one evaluation run."""

    pairs: int
    sentences: int
    spearman: float
    pearson: float
    seconds: float  #: embedding the unique sentences once, tokenizing included, the engine warmed up first
    teacher_cosine: float | None = None
    teacher_missing: int = 0
    by_genre: dict[str, float] = field(default_factory=dict)

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        return {
            "pairs": self.pairs,
            "sentences": self.sentences,
            "spearman": self.spearman,
            "pearson": self.pearson,
            "seconds": self.seconds,
            "sentences_per_second": self.sentences_per_second,
            "teacher_cosine": self.teacher_cosine,
            "teacher_missing": self.teacher_missing,
            "by_genre": self.by_genre,
        }


def score_embeddings(pairs: Pairs, texts: list[str], embeddings: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """Spearman and Pearson of the pairs' cosines with the gold scores, and Spearman per genre."""
    index = {t: i for i, t in enumerate(texts)}
    e1 = embeddings[[index[s] for s in pairs.s1]]
    e2 = embeddings[[index[s] for s in pairs.s2]]
    cos = cosine_rows(e1, e2)
    by_genre: dict[str, float] = {}
    if pairs.genres:
        genres = np.asarray(pairs.genres)
        for g in sorted(set(pairs.genres)):
            mask = genres == g
            if mask.sum() >= 2:
                by_genre[g] = spearman(cos[mask], pairs.scores[mask])
    return spearman(cos, pairs.scores), pearson(cos, pairs.scores), by_genre


def teacher_agreement(texts: list[str], embeddings: np.ndarray, teacher) -> tuple[float, int]:
    """Mean cosine between ``embeddings`` and the teacher's rows of the same texts.

    Texts the teacher file lacks are left out and counted. Raises :class:`InputError`
    when none is found or the dimensions differ.
    """
    if teacher.dim != embeddings.shape[1]:
        raise InputError(
            f"{teacher.path}: teacher dimension is {teacher.dim}, the Algorithm embeds in {embeddings.shape[1]}"
        )
    lookup = teacher.lookup()
    found = [(i, lookup[t]) for i, t in enumerate(texts) if t in lookup]
    if not found:
        raise InputError(f"{teacher.path}: none of the {len(texts)} evaluated sentences is in the teacher file")
    ours = np.asarray([i for i, _ in found])
    theirs = np.asarray([j for _, j in found])
    cos = cosine_rows(embeddings[ours], teacher.embeddings[theirs])
    return float(cos.mean()), len(texts) - len(found)


def evaluate(engine, pairs: Pairs, teacher=None) -> EvalResult:
    """Embed the unique sentences of ``pairs`` with ``engine`` and score them.

    The engine is warmed up first (:meth:`sae.Engine.warm_up`): the rate then times the
    embedding, not the vector rows a fresh engine computes once (the default on STS-B dev,
    one pass: 9,000-10,000 sentences/s, where about 1,000 were reported)."""
    texts = pairs.unique_texts()
    engine.warm_up()
    start = time.perf_counter()
    embeddings = engine.embed(texts)
    seconds = time.perf_counter() - start
    rho, r, by_genre = score_embeddings(pairs, texts, embeddings)
    tcos, missing = (None, 0)
    if teacher is not None:
        tcos, missing = teacher_agreement(texts, embeddings, teacher)
    return EvalResult(len(pairs), len(texts), rho, r, seconds, tcos, missing, by_genre)


__all__ = [
    "EvalResult",
    "Pairs",
    "cosine_rows",
    "evaluate",
    "pearson",
    "rankdata",
    "read_pairs",
    "score_embeddings",
    "spearman",
    "teacher_agreement",
]
