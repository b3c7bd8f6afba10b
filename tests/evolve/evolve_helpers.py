"""The evolve tests' tiny world: the tiny Algorithm as base, a teacher file and STS pairs
built from its vocabulary (with negated minimal pairs), small enough for a run in seconds.

Each test module makes its ``world`` fixture with :func:`build_world` (kept out of a
``conftest.py`` here: helpers imported by name must have unique module names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny import make_tiny

from sae.algorithm import load_algorithm, save_algorithm
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



def add_long_texts(world: dict[str, Path]) -> dict[str, Path]:
    """The world with texts longer than the stream capacity among its pairs: ``teacher_long``
    and ``pairs_long`` beside the others (the short texts' pairs, and pairs of long ones)."""
    import pyarrow.parquet as pq

    from sae import Engine

    rng = np.random.default_rng(11)
    table = pq.read_table(world["teacher"])
    texts = table.column("text").to_pylist()
    emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float64)
    engine = Engine(load_algorithm(world["base"]), backend="cpu")
    long_texts = []
    while len(long_texts) < 12:
        text = " ".join(rng.choice(texts[:70], size=int(rng.integers(30, 60)), replace=False))
        if len(engine.tokenize([text])[0]) > 2 * engine.caps.stream and text not in long_texts:
            long_texts.append(text)
    long_emb = engine.embed(long_texts).astype(np.float64) + 0.2 * rng.standard_normal((len(long_texts), emb.shape[1]))
    long_emb /= np.linalg.norm(long_emb, axis=1, keepdims=True)
    write_embeddings(world["root"] / "teacher-long.parquet", texts + long_texts,
                     np.concatenate([emb, long_emb]).astype(np.float32))
    lines = world["pairs"].read_text(encoding="utf-8").splitlines()
    for k in range(40):
        i, j = rng.choice(len(long_texts), 2, replace=False)
        score = float(np.clip(2.5 + 2.5 * long_emb[i] @ long_emb[j], 0, 5))
        lines.append(f"main-forums\tanswers\t2015\t{k + 1000:04d}\t{score:.3f}\t{long_texts[i]}\t{long_texts[j]}")
    (world["root"] / "pairs-long.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {**world, "teacher_long": world["root"] / "teacher-long.parquet",
            "pairs_long": world["root"] / "pairs-long.csv"}
