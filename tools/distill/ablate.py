"""Dev Spearman of an Algorithm with each rule removed in turn (the rules' share, measured).

    python tools/distill/ablate.py --shared ../shared [--algorithm sae/data/default]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sae.algorithm import load_algorithm  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.evaluate import evaluate, read_pairs  # noqa: E402
from sae.teacher import read_teacher  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None)
    ap.add_argument("--split", default="dev", choices=("dev", "train"))
    args = ap.parse_args()
    shared = Path(args.shared)
    pairs = read_pairs(shared / f"data/stsb/sts-{args.split}.csv")
    teacher = read_teacher(shared / f"data/teacher/teacher-minilm-{args.split}.parquet")
    alg = load_algorithm(args.algorithm)
    variants = [("all rules", alg), ("no rules (alg.without_rules())", alg.without_rules()),
                ("merges only", replace(alg, rules=tuple(r for r in alg.rules if r.kind == "merge"))),
                ("reweighting only", replace(alg, rules=tuple(r for r in alg.rules if r.kind != "merge")))]
    for i, rule in enumerate(alg.rules):
        variants.append((f"without {rule.name}", replace(alg, rules=alg.rules[:i] + alg.rules[i + 1 :])))
    print(f"{args.split}: {len(pairs)} pairs; Algorithm {alg.name} {alg.content_hash[:12]}")
    print(f"{'variant':<36} {'Spearman':>9} {'cos->teacher':>13}")
    for name, a in variants:
        r = evaluate(Engine(a, backend="cpu"), pairs, teacher)
        print(f"{name:<36} {r.spearman:9.4f} {r.teacher_cosine:13.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
