"""What sae makes of texts longer than the stream (128 tokens): windows against truncation.

    python tools/long_texts.py --shared ../shared --cache out/long-texts \
        [--teacher-python /path/to/venv-teacher/bin/python] [--count 400] [--algorithm DIR]

Builds from STS-B **train** only (seeded, so every run builds the same texts):

1. ``--count`` long texts of 131–250 tokens: unique train sentences, shuffled, joined
   until a length drawn at random is reached. The teacher (all-MiniLM-L6-v2) reads up to
   256 word pieces, so it sees each of them whole.
2. ``--count`` long pairs: 12 train pairs at a time, their first sentences joined and
   their second sentences joined; the gold score is the mean of the 12.

and prints, for each way of embedding a long text — its first 128 tokens
(``long_texts="truncate"``), windows summed by their tokens (``"window"``, the default),
and one document of up to 256 tokens (``Capacities(stream=256, rules=128)``: the
capacity alternative) — the mean cosine to the teacher on (1), and on (2) the Spearman
correlation of the pair cosines with the mean gold and with the teacher's cosines.
The teacher's embeddings are cached in ``--cache`` (``sae.distill.teacher_cache``).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GROUP = 12  #: train pairs per long pair


def long_texts(sentences: list[str], count: int, lengths, rng: random.Random) -> list[str]:
    """Train sentences joined into texts of 131–250 tokens (``lengths`` counts a text's tokens)."""
    out, current, target = [], [], rng.randint(131, 250)
    for sentence in sentences:
        current.append(sentence)
        n = lengths(" ".join(current))
        if n >= target:
            if n <= 250:
                out.append(" ".join(current))
            current, target = [], rng.randint(131, 250)
        if len(out) == count:
            break
    return out


def build(pairs, count: int, lengths) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """The long texts, the long pairs' two sides and their mean gold (module docstring),
    the same on every run; ``lengths`` counts a text's tokens."""
    rng = random.Random(0)
    sentences = sorted(set(pairs.unique_texts()))
    rng.shuffle(sentences)
    singles = long_texts(sentences, count, lengths, rng)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    groups = [order[k : k + GROUP] for k in range(0, len(order) - GROUP + 1, GROUP)][:count]
    left = [" ".join(pairs.s1[i] for i in g) for g in groups]
    right = [" ".join(pairs.s2[i] for i in g) for g in groups]
    gold = np.array([np.mean([pairs.scores[i] for i in g]) for g in groups])
    return singles, left, right, gold


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--cache", default="out/long-texts", help="the teacher's embeddings of the long texts")
    ap.add_argument("--teacher-python", default=None, help="an interpreter with sae[teacher] installed")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    args = ap.parse_args()

    from sae import Engine
    from sae.distill.teacher_cache import TeacherCache
    from sae.evaluate import read_pairs, spearman
    from sae.layout import Capacities

    pairs = read_pairs(Path(args.shared) / "data" / "stsb" / "sts-train.csv")
    engines = {
        "first 128 tokens (truncate)": Engine(args.algorithm, backend="cpu", long_texts="truncate"),
        "windows (the default)": Engine(args.algorithm, backend="cpu"),
        "one document of 256 tokens": Engine(args.algorithm, backend="cpu", long_texts="truncate",
                                             caps=Capacities(stream=256, rules=128)),
    }
    windows = engines["windows (the default)"]
    singles, left, right, gold = build(pairs, args.count, lambda t: len(windows.tokenize([t])[0]))
    if not singles or len(gold) < 2:
        print(f"{args.shared}: too few train sentences for long texts", file=sys.stderr)
        return 2

    teacher = TeacherCache(args.cache, args.teacher_python)
    t_single = teacher.embeddings(singles)
    t_left, t_right = teacher.embeddings(left), teacher.embeddings(right)
    t_cos = (t_left * t_right).sum(axis=1)
    tokens = [len(ids) for ids in windows.tokenize(singles + left + right)]
    print(f"{len(singles)} long texts ({min(tokens[:len(singles)])}-{max(tokens[:len(singles)])} tokens), "
          f"{len(gold)} long pairs of {GROUP} train pairs ({min(tokens[len(singles):])}-"
          f"{max(tokens[len(singles):])} tokens; {sum(n > 128 for n in tokens[len(singles):])} texts over 128)")
    print(f"teacher: long pairs, Spearman against the mean gold {spearman(t_cos, gold):.4f}")
    print(f"{'':30s} {'cosine to teacher':>18s} {'pairs vs gold':>14s} {'pairs vs teacher':>17s}")
    for name, engine in engines.items():
        single = (engine.embed(singles) * t_single).sum(axis=1).mean()
        cos = (engine.embed(left) * engine.embed(right)).sum(axis=1)
        print(f"{name:30s} {single:18.4f} {spearman(cos, gold):14.4f} {spearman(cos, t_cos):17.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
