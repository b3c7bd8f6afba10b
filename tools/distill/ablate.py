"""Spearman of an Algorithm with each of its rules removed in turn (the rules' share, measured),
and what each rule costs on the numpy path.

    python tools/distill/ablate.py --shared ../shared [--algorithm DIR] [--split dev|train] [--passes N]

The variants are :func:`sae.distill.ablation.variants`: no rules, merges only, no
transform rules, no guards, the health check off, each rule removed. Then, rule by
rule, what it adds (all rules against the Algorithm without it) beside its matching and
footprints per pass over the split's texts and their share of the anneal
(:func:`sae.distill.ablation.rule_costs`, the mean of ``--passes`` profiled passes).
"""

from __future__ import annotations

import sys

from split_inputs import split_inputs  # tools/distill/split_inputs.py, beside this file

from sae.distill.ablation import ablate, rule_costs
from sae.engine import Engine
from sae.errors import run_script
from sae.profile import mean_cpu_ms


def main() -> int:
    args, pairs, teacher, alg = split_inputs(__doc__, passes=True)
    print(f"{args.split}: {len(pairs)} pairs; Algorithm {alg.name} {alg.content_hash[:12]}")
    print(f"{'variant':<40} {'Spearman':>9} {'cos->teacher':>13} {'committed':>10} {'reverted':>9}")
    rows = ablate(alg, pairs, teacher)
    for v in rows:
        print(f"{v.name:<40} {v.spearman:9.4f} {v.teacher_cosine:13.4f} {v.committed:10d} {v.reverted:9d}")
    spearman = {v.name: v.spearman for v in rows}
    texts = pairs.unique_texts()
    costs = rule_costs(alg, mean_cpu_ms(Engine(alg, backend="cpu"), texts, args.passes))
    print(f"\neach rule: what it adds, and its matching and footprints on the numpy path "
          f"(ms per pass over {len(texts)} texts, the mean of {args.passes}; share of the anneal)")
    print(f"{'rule':<24} {'adds':>8} {'match ms':>9} {'footprints ms':>14} {'anneal':>7}")
    for c in costs:
        adds = spearman["all rules"] - spearman[f"without {c.name}"]
        print(f"{c.name:<24} {adds:+8.4f} {c.match_ms:9.2f} {c.footprint_ms:14.2f} {100 * c.share:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
