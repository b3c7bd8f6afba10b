"""Spearman of an Algorithm with each of its rules removed in turn (the rules' share, measured).

    python tools/distill/ablate.py --shared ../shared [--algorithm DIR] [--split dev|train]

The variants are :func:`sae.distill.ablation.variants`: no rules, merges only, no
transform rules, no guards, the health check off, each rule removed.
"""

from __future__ import annotations

import sys

from split_inputs import split_inputs  # tools/distill/split_inputs.py, beside this file

from sae.distill.ablation import ablate
from sae.errors import run_script


def main() -> int:
    args, pairs, teacher, alg = split_inputs(__doc__)
    print(f"{args.split}: {len(pairs)} pairs; Algorithm {alg.name} {alg.content_hash[:12]}")
    print(f"{'variant':<40} {'Spearman':>9} {'cos->teacher':>13} {'committed':>10} {'reverted':>9}")
    for v in ablate(alg, pairs, teacher):
        print(f"{v.name:<40} {v.spearman:9.4f} {v.teacher_cosine:13.4f} {v.committed:10d} {v.reverted:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
