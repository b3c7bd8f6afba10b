"""The objectives of an Algorithm's rules as a genome on a run's base and data: its cost is
what ``sae evolve --max-cost`` compares with (a throughput budget in bid work per text).

    python tools/evolve/cost_of.py --algorithm sae/data/default --base out/base-v2 \
        --teacher out/evolve/teacher-train.parquet --pairs ../shared/data/stsb/sts-train.csv \
        --fit-pairs 0 --minimal-pairs 1000

Use the same --base, --teacher, --pairs, --fit-pairs and --minimal-pairs as the run.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    from sae.algorithm import load_algorithm
    from sae.blas import one_thread
    from sae.evolve.data import build_eval_data
    from sae.evolve.fitness import Evaluator
    from sae.evolve.genome import Genome, normalized

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algorithm", required=True, help="the Algorithm whose rules and loop parameters are measured")
    ap.add_argument("--base", default=None)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--pairs", default=None)
    ap.add_argument("--fit-pairs", type=int, default=3000)
    ap.add_argument("--minimal-pairs", type=int, default=1000)
    args = ap.parse_args()
    base = load_algorithm(args.base)
    ref = load_algorithm(args.algorithm)
    data = build_eval_data(base, args.teacher, args.pairs, args.fit_pairs, args.minimal_pairs)
    genome = normalized(Genome(ref.rules, ref.params))
    with one_thread():
        ev = Evaluator(base, data).evaluate(genome.canonical(), "fit")
    print(json.dumps({"algorithm": args.algorithm, "fit": ev.objectives}))
    return 0


if __name__ == "__main__":
    from sae.errors import run_script

    sys.exit(run_script(main))
