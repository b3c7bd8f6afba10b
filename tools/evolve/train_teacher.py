"""A teacher file for ``sae evolve``: the train sentences and their minimal pairs.

The shared teacher file holds the train sentences only. Evolution also scores how
closely sae tracks the teacher on minimal pairs (a sentence and the same sentence
negated, or with its roles swapped: :mod:`sae.distill.minimal_pairs`), so this
script adds the teacher's embedding of every variant of a **train** sentence, from
the distillation's teacher cache (computed with the teacher's interpreter when the
cache lacks one). Nothing from dev goes in.

    python tools/evolve/train_teacher.py --shared ../shared --cache out/distill \
        --teacher-python /work/venv-teacher/bin/python --out out/evolve/teacher-train.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from sae.distill.minimal_pairs import minimal_pairs
    from sae.distill.teacher_cache import TeacherCache
    from sae.evaluate import read_pairs
    from sae.io import write_embeddings
    from sae.teacher import read_teacher

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--cache", default="out/distill", help="the distillation teacher cache")
    ap.add_argument("--teacher-python", default=None, help="interpreter with sae[teacher], when the cache lacks texts")
    ap.add_argument("--out", default="out/evolve/teacher-train.parquet")
    args = ap.parse_args(argv)

    shared = Path(args.shared) / "data"
    base = read_teacher(shared / "teacher/teacher-minilm-train.parquet")
    sentences = read_pairs(shared / "stsb/sts-train.csv").unique_texts()
    found = minimal_pairs(sentences)
    variants = [v for pairs in found.values() for _, v in pairs]
    have = set(base.texts)
    variants = [v for v in dict.fromkeys(variants) if v not in have]
    emb = TeacherCache(args.cache, args.teacher_python).embeddings(variants)
    texts = list(base.texts) + variants
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_embeddings(args.out, texts, np.concatenate([np.asarray(base.embeddings), emb]),
                     {"teacher": "sentence-transformers/all-MiniLM-L6-v2", "normalized": "true",
                      "content": "STS-B train sentences and their minimal-pair variants"})
    print(f"{args.out}: {len(base.texts)} train sentences + {len(variants)} minimal-pair variants", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from sae.errors import run_script

    sys.exit(run_script(main))
