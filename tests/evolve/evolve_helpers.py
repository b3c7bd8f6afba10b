"""The evolve tests' tiny world: the tiny Algorithm as base, a teacher file and STS pairs
built from its vocabulary (with negated minimal pairs), small enough for a run in seconds.

Each test module makes its ``world`` fixture with :func:`build_world` (kept out of a
``conftest.py`` here: helpers imported by name must have unique module names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny import make_tiny

from sae.algorithm import save_algorithm
from sae.distill.minimal_pairs import negate
from sae.io import write_embeddings


def evolve_args(world: dict[str, Path], run: Path, out: Path, *extra: str, generations: int = 4,
                population: int = 6) -> list[str]:
    return ["evolve", "--teacher", str(world["teacher"]), "--pairs", str(world["pairs"]), "--base", str(world["base"]),
            "--run", str(run), "--out", str(out), "--generations", str(generations), "--population", str(population),
            "--fit-pairs", "0", "--minimal-pairs", "0", "--final-candidates", "3", *extra]

NOUNS = "cat dog man woman house food city".split()
ADJ = "good bad big small red blue happy sad new".split()
VERBS = "eats runs".split()


def sentences(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    while len(out) < n:
        kind = rng.integers(4)
        a, b = rng.choice(NOUNS, 2, replace=False)
        adj = rng.choice(ADJ)
        if kind == 0:
            s = f"the {a} is {adj}."
        elif kind == 1:
            s = f"a {adj} {a} {rng.choice(VERBS)} the {b}!"
        elif kind == 2:
            s = f"the {a} was playing with a {adj} {b}."
        else:
            s = f"new york city is very {adj}, and the {a} is {rng.choice(ADJ)}."
        if s not in out:
            out.append(s)
    return out


def build_world(root: Path) -> dict[str, Path]:
    """Write the world under ``root``; paths: ``base`` (Algorithm dir), ``teacher`` (parquet),
    ``pairs`` (STS tsv), ``teacher_dim4`` (a teacher of the wrong dimension)."""
    rng = np.random.default_rng(7)
    base = make_tiny(transforms=1)
    save_algorithm(base, root / "base", vector_dtype="float32")
    texts = sentences(rng, 70)
    variants = [v for v in (negate(t) for t in texts) if v]
    all_texts = texts + variants
    from sae import Engine

    emb = Engine(base, backend="cpu").embed(all_texts).astype(np.float64)
    emb += 0.4 * rng.standard_normal(emb.shape)
    neg = rng.standard_normal(emb.shape[1])
    for i, t in enumerate(all_texts):
        if " not " in t:
            emb[i] += 0.8 * neg  # the teacher reads negation; a bag of words barely does
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    write_embeddings(root / "teacher.parquet", all_texts, emb.astype(np.float32))
    lines = []
    for k in range(90):
        i, j = rng.choice(len(texts), 2, replace=False)
        cos = float(emb[i] @ emb[j])
        score = float(np.clip(2.5 + 2.5 * cos + rng.normal(0, 0.5), 0, 5))
        lines.append(f"main-captions\tMSRvid\t2012test\t{k:04d}\t{score:.3f}\t{texts[i]}\t{texts[j]}")
    (root / "pairs.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # A teacher of another dimension, for the bad-input tests.
    write_embeddings(root / "teacher-dim4.parquet", all_texts, np.eye(4, dtype=np.float32)[np.arange(len(all_texts)) % 4])
    return {"root": root, "base": root / "base", "teacher": root / "teacher.parquet", "pairs": root / "pairs.csv",
            "teacher_dim4": root / "teacher-dim4.parquet"}

