"""Spearman of an Algorithm with each of its rules removed in turn (the rules' share, measured).

    python tools/distill/ablate.py --shared ../shared [--algorithm DIR] [--split dev|train]

The variants are :func:`sae.distill.ablation.variants`: no rules, merges only, no
transform rules, no guards, the health check off, each rule removed.
"""

from __future__ import annotations

import argparse
import sys

from sae.algorithm import load_algorithm
from sae.distill.ablation import ablate
from sae.errors import run_script
from sae.evaluate import read_shared_split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--algorithm", default=None)
    ap.add_argument("--split", default="dev", choices=("dev", "train"))
    args = ap.parse_args()
    pairs, teacher = read_shared_split(args.shared, args.split)
    alg = load_algorithm(args.algorithm)
    print(f"{args.split}: {len(pairs)} pairs; Algorithm {alg.name} {alg.content_hash[:12]}")
    print(f"{'variant':<40} {'Spearman':>9} {'cos->teacher':>13} {'committed':>10} {'reverted':>9}")
    for v in ablate(alg, pairs, teacher):
        print(f"{v.name:<40} {v.spearman:9.4f} {v.teacher_cosine:13.4f} {v.committed:10d} {v.reverted:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
