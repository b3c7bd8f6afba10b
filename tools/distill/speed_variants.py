"""Throughput and dev Spearman of the default with subsets of its rules (the speed/quality trade-off).

    python tools/distill/speed_variants.py --shared ../shared
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_cpu import sae_rate  # noqa: E402

from sae.algorithm import load_algorithm  # noqa: E402
from sae.cli.common import positive_int  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.errors import run_script  # noqa: E402
from sae.evaluate import read_pairs, score_embeddings  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None)
    ap.add_argument("--repeats", type=positive_int, default=5)
    args = ap.parse_args()
    dev = read_pairs(Path(args.shared) / "data/stsb/sts-dev.csv")
    texts = dev.unique_texts()
    alg = load_algorithm(args.algorithm)
    names = [r.name for r in alg.rules]
    merges = [r.name for r in alg.rules if r.kind == "merge"]

    def only(keep):
        return replace(alg, rules=tuple(r for r in alg.rules if r.name in keep))

    variants = {"all rules": alg, "no rules": alg.without_rules()}
    if merges:  # without merges, "merges only" would be "no rules" again
        variants["merges only"] = only(merges)
    for r in alg.rules:
        if r.kind != "merge":
            variants[f"all but {r.name}"] = only([n for n in names if n != r.name])
            variants[f"{r.name} only"] = only([r.name])
    print(f"{'rules kept':<36} {'sentences/s':>12} {'dev Spearman':>13}")
    for name, a in variants.items():
        rate, emb = sae_rate(Engine(a, backend="cpu"), texts, args.repeats)
        print(f"{name:<36} {rate:>12,.0f} {score_embeddings(dev, texts, emb)[0]:>13.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
