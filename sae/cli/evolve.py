"""``sae evolve``: discover an Algorithm against the teacher (docs/EVOLVE.md)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys

from sae.cli.common import int_in, non_negative_int, port, positive_int
from sae.evolve.fitness import MAX_W_MINIMAL
from sae.evolve.run import MAX_GENERATIONS, MAX_POPULATION, MIN_FIT_PAIRS
from sae.ray_address import check_ray_address


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evolve",
        help="evolve Algorithms (rules, loop parameters, lexicon) against a teacher; deterministic, resumable",
        description="Evolve the rules, loop parameters and lexicon threshold of a base Algorithm against a "
                    "teacher (and STS pairs) on train data. Deterministic for a seed whatever --workers or "
                    "--executor; every generation is committed to --run, so a killed run continues with "
                    "--resume. Writes the final Algorithm to --out.",
    )
    p.add_argument("--teacher", required=True, metavar="TEACHER.parquet",
                   help="teacher embeddings (text, embedding) of the train texts")
    p.add_argument("--out", required=True, metavar="BEST_DIR", help="Algorithm directory to write at the end")
    p.add_argument("--run", required=True, metavar="RUN.sqlite", dest="run_path", help="the run store (created, or resumed)")
    p.add_argument("--base", metavar="ALGORITHM", default=None,
                   help="Algorithm whose vectors, tokenizer, classes and lexicon the genomes use "
                        "(default: the bundled one)")
    p.add_argument("--pairs", metavar="STS.csv", default=None,
                   help="STS-style train pairs with gold scores (without: fitness from the teacher alone)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--generations", type=int_in(1, MAX_GENERATIONS), default=20, metavar="G",
                   help=f"generations, the initial one included (default 20, at most {MAX_GENERATIONS:,})")
    p.add_argument("--population", type=int_in(1, MAX_POPULATION), default=16, metavar="P",
                   help="survivors per generation, and children bred per generation "
                        f"(default 16, at most {MAX_POPULATION:,})")
    p.add_argument("--workers", type=positive_int, default=1, metavar="W",
                   help="evaluation processes (local) or Ray actors (default 1)")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join (default with --executor ray: start a local instance)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run stored in --run (start it when the file holds no run yet)")
    p.add_argument("--metrics-port", type=port, default=None, metavar="PORT",
                   help="serve Prometheus metrics on 127.0.0.1:PORT (pip install 'sae[evolve]')")
    p.add_argument("--backend", choices=("cpu", "gpu"), default="cpu", help="engine backend of the evaluations")
    g = p.add_argument_group("search settings (part of the run's identity)")
    g.add_argument("--fit-pairs", type=non_negative_int, default=3000, metavar="N",
                   help="train pairs selection sees (0: all but the validation fifth; else at least 10; default 3000)")
    g.add_argument("--minimal-pairs", type=non_negative_int, default=1000, metavar="N",
                   help="minimal pairs in the fitness, an equal share of N for each kind (0: all; default 1000)")
    g.add_argument("--max-rules", type=positive_int, default=24, metavar="N")
    g.add_argument("--crossover", type=float, default=0.3, metavar="P", help="crossover probability (default 0.3)")
    g.add_argument("--transforms", choices=("inherit", "fit"), default="inherit",
                   help="transforms of a genome: the base's, or fitted per genome (3x slower)")
    g.add_argument("--w-minimal", type=float, default=0.5, metavar="W",
                   help=f"weight of the minimal-pair error in quality (default 0.5, at most {MAX_W_MINIMAL:g})")
    g.add_argument("--final-candidates", type=positive_int, default=8, metavar="K",
                   help="front members validated for the final pick (default 8)")
    g.add_argument("--max-cost", type=float, default=None, metavar="C",
                   help="the final pick considers only genomes of cost at most C (a throughput budget; "
                        "tools/evolve/cost_of.py gives an Algorithm's cost)")
    g.add_argument("--resample", type=float, default=0.0, metavar="F",
                   help="each generation, select on a fresh random fraction F of the fit pairs and fit minimal "
                        "pairs (0: all of them, the default; docs/EVOLVE.md, \"Resampled selection\")")
    g.add_argument("--distinct", action="store_true",
                   help="genomes of equal objectives (the same behaviour) take one place in the population "
                        "and among the final candidates")
    g.add_argument("--linear", action="store_true",
                   help="no rule may write MUL, so every program is a sum and the pick takes an output map "
                        "(sae distill --output-map-of)")
    p.add_argument("--name", default="evolved", help="the written Algorithm's name (default: evolved)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sae.errors import InputError
    from sae.evolve.fitness import FitnessSettings
    from sae.evolve.observe import LiveView, Metrics, Observers
    from sae.evolve.run import EvolveConfig, Inputs, evolve
    from sae.evolve.store import readable_run

    # EvolveConfig and FitnessSettings check these too (for callers from Python, with the
    # bounds defined there); checked here first for messages in the flags' names.
    if not 0.0 <= args.crossover <= 1.0:
        raise InputError(f"--crossover must be in 0..1, got {args.crossover}")
    if args.max_cost is not None and not (math.isfinite(args.max_cost) and args.max_cost >= 0):
        raise InputError(f"--max-cost must be a finite number >= 0 (leave it out for no budget), got {args.max_cost}")
    if not 0.0 <= args.resample < 1.0:
        raise InputError(f"--resample must be in 0..1 (a fraction, 0 for all pairs, below 1), got {args.resample}")
    if 0 < args.fit_pairs < MIN_FIT_PAIRS:
        raise InputError(f"--fit-pairs must be 0 (all) or at least {MIN_FIT_PAIRS}, got {args.fit_pairs}")
    if not 0 <= args.w_minimal <= MAX_W_MINIMAL:
        raise InputError(f"--w-minimal must be in 0..{MAX_W_MINIMAL:g}, got {args.w_minimal}")
    if args.executor == "ray":
        check_ray_address(args.ray_address, "--ray-address")  # before the run file is created
    config = EvolveConfig(
        seed=args.seed, generations=args.generations, population=args.population, fit_pairs=args.fit_pairs,
        minimal_pairs=args.minimal_pairs, max_rules=args.max_rules, crossover=args.crossover,
        final_candidates=args.final_candidates, max_cost=args.max_cost, resample=args.resample,
        distinct=args.distinct, linear=args.linear,
        fitness=FitnessSettings(backend=args.backend, transforms=args.transforms, w_minimal=args.w_minimal),
    )
    metrics = Metrics(args.metrics_port) if args.metrics_port is not None else None
    observer = Observers(LiveView(), metrics)
    # A resumed run reads back what the interrupted one wrote: a damaged page is one line.
    with readable_run(args.run_path) if args.resume else contextlib.nullcontext():
        result = evolve(Inputs(args.teacher, args.base, args.pairs), config, args.run_path, args.out,
                        resume=args.resume, executor_kind=args.executor, workers=args.workers,
                        ray_address=args.ray_address, observer=observer, name=args.name)
    fit, valid = result.final["fit"], result.final["valid"]
    if args.json:
        print(json.dumps({"genome": result.genome, "algorithm": result.algorithm, "out": str(result.out),
                          "fit": fit, "valid": valid}))
    else:
        print(f"best Algorithm {result.algorithm[:16]} (genome {result.genome[:16]}) written to {result.out}: "
              f"fit quality {fit['quality']:.4f}, validation quality {valid['quality']:.4f}", file=sys.stderr)
    return 0
