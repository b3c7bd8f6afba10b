"""``sae eval PAIRS``: STS evaluation — Spearman of cosine similarity with gold scores."""

from __future__ import annotations

import argparse
import json
import math
import sys

from sae import Engine
from sae.cli.common import add_engine_options, engine_from_args
from sae.evaluate import evaluate, read_pairs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="STS evaluation: Spearman of cosine similarity with gold scores",
        description="Embed the unique sentences of PAIRS (STS Benchmark layout: tab-separated "
        "genre, file, year, id, score, sentence 1, sentence 2; no quote handling) and report the "
        "Spearman correlation of the pairs' cosine similarity with the gold scores. With --teacher, "
        "also the mean cosine between sae's and the teacher's embeddings of the same sentences. With "
        "--rules-add, the same for the Algorithm with its rules removed, and what its rules add.",
    )
    p.add_argument("pairs", metavar="PAIRS", help="STS Benchmark style tab-separated file, or - for stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--teacher", metavar="FILE", help="teacher Parquet file (text, embedding) of the sentences")
    p.add_argument("--rules-add", action="store_true",
                   help="also evaluate the same Algorithm with its rules removed (the plain weighted average of "
                   "its vectors) and report what the rules add: Spearman with them minus without")
    add_engine_options(p)
    p.set_defaults(run=run)


def _no_nan(value):
    """``value`` with every NaN as None: JSON has no NaN (an undefined correlation is null)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    pairs = read_pairs(args.pairs)
    teacher = None
    if args.teacher:
        from sae.teacher import read_teacher

        teacher = read_teacher(args.teacher)
    engine = engine_from_args(args)
    result = evaluate(engine, pairs, teacher)
    plain = None
    if args.rules_add:
        # The same backend, batch and threads: only the rules differ.
        plain = evaluate(Engine(engine.algorithm.without_rules(), backend=engine.backend.name,
                                batch_size=args.batch_size, adapter=args.adapter, threads=args.threads), pairs, teacher)
    if math.isnan(result.spearman):
        print(f"sae eval: warning: {args.pairs}: the correlations are undefined (the gold scores or the cosines "
              "are all equal)", file=sys.stderr)
    undefined = [genre for genre, rho in result.by_genre.items() if math.isnan(rho)]
    if undefined and not math.isnan(result.spearman):
        print(f"sae eval: warning: {args.pairs}: the correlation of {', '.join(map(repr, undefined))} is undefined "
              "(its gold scores or cosines are all equal, or it has one pair)", file=sys.stderr)
    if args.json:
        doc = {"pairs_file": args.pairs, "algorithm": engine.algorithm.name,
               "algorithm_hash": engine.algorithm.content_hash, "backend": engine.backend.name,
               **result.as_dict()}
        if plain is not None:
            doc["without_rules"] = plain.as_dict()
            doc["rules_add"] = result.spearman - plain.spearman
        print(json.dumps(_no_nan(doc), sort_keys=True, allow_nan=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sae eval {args.pairs}", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("pairs", str(result.pairs))
    table.add_row("unique sentences", str(result.sentences))
    table.add_row("Spearman (cosine vs gold)", f"{result.spearman:.4f}")
    table.add_row("Pearson (cosine vs gold)", f"{result.pearson:.4f}")
    for genre, rho in result.by_genre.items():
        table.add_row(f"  Spearman, {genre}", f"{rho:.4f}")
    if result.teacher_cosine is not None:
        table.add_row("mean cosine to teacher", f"{result.teacher_cosine:.4f}")
        if result.teacher_missing:
            table.add_row("  sentences not in teacher file", str(result.teacher_missing))
    if plain is not None:
        table.add_row("Spearman, rules removed", f"{plain.spearman:.4f}")
        for genre, rho in plain.by_genre.items():
            table.add_row(f"  Spearman, {genre}, rules removed", f"{rho:.4f}")
        if plain.teacher_cosine is not None:
            table.add_row("mean cosine to teacher, rules removed", f"{plain.teacher_cosine:.4f}")
        table.add_row("rules add (Spearman)", f"{result.spearman - plain.spearman:+.4f}")
    table.add_row(f"sentences/s ({engine.backend.name})", f"{result.sentences_per_second:,.0f}")
    table.add_row("Algorithm", f"{engine.algorithm.name} {engine.algorithm.content_hash[:12]}")
    Console(markup=False).print(table)  # the file's name and genres are shown as they are
    return 0
