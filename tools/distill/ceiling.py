"""The oracle ceiling of rules that imitate the teacher (sae.distill.ceiling).

    python tools/distill/ceiling.py --shared ../shared [--algorithm DIR] [--split dev|train]

Prints, for the teacher, the Algorithm with and without its rules, and the per-text
oracles on its rule-less programs (nonnegative weights; weights and any transform):
Spearman, per genre, mean cosine to the teacher, and what each adds over no rules.
Needs scipy (``pip install 'sae[analysis]'``).
"""

from __future__ import annotations

import sys

import numpy as np
from split_inputs import split_inputs  # tools/distill/split_inputs.py, beside this file

from sae.distill.ceiling import ceiling
from sae.errors import run_script


def main() -> int:
    args, pairs, teacher, alg = split_inputs(__doc__)
    texts = pairs.unique_texts()
    lookup = teacher.lookup()
    missing = [t for t in texts if t not in lookup]
    if missing:
        print(f"error: {teacher.path}: {len(missing)} of the {args.split} texts have no teacher row", file=sys.stderr)
        return 2
    rows = ceiling(alg, pairs, texts, np.asarray(teacher.embeddings)[[lookup[t] for t in texts]])
    genres = sorted(rows[0].by_genre)
    print(f"{args.split}: {len(pairs)} pairs, {len(texts)} texts; Algorithm {alg.name} {alg.content_hash[:12]}")
    print(f"{'':<42}{'Spearman':>9}{'vs no rules':>12}" + "".join(f"{g[:10]:>11}" for g in genres) + f"{'cos->teacher':>13}")
    base = next(r.spearman for r in rows if r.name == "no rules")
    for r in rows:
        print(f"{r.name:<42}{r.spearman:9.4f}{r.spearman - base:+12.4f}"
              + "".join(f"{r.by_genre[g]:11.4f}" for g in genres) + f"{r.teacher_cosine:13.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
