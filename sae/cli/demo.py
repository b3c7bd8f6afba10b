"""``sae demo``: embed a small bundled sample and show what the engine does, in one table."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from sae.cli.common import add_engine_options
from sae.engine import Engine
from sae.errors import InputError
from sae.evaluate import read_pairs, score_embeddings
from sae.layout import COMMITTED, EMBEDDING_TOLERANCE

log = logging.getLogger("sae")

#: 40 sentence pairs written for sae (not from STS-B), STS Benchmark layout.
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "demo_pairs.tsv"
#: The sample is embedded this many times to measure a steady rate.
REPEATS = 25


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="embed a bundled sample: throughput, Spearman, CPU vs GPU agreement",
        description="Embed a small bundled sample of 40 sentence pairs (written for sae) and print "
        "the backend and adapter, sentences per second, the Spearman correlation with the sample's "
        "scores, and the agreement of the CPU and GPU paths when a GPU adapter exists.",
    )
    p.add_argument("--pairs", metavar="PAIRS", default=str(SAMPLE), help="another STS-style pairs file (- for stdin)")
    add_engine_options(p, batch=False, backend_help="cpu: the CPU path alone; auto (default): also the GPU "
                       "path, beside it, when an adapter can run sae (a software one too); gpu: the same, and "
                       "no usable adapter is an error (exit 2)")
    p.set_defaults(run=run)


def _rate(engine: Engine, texts: list[str]) -> tuple[np.ndarray, float]:
    emb = engine.embed(texts)  # warm-up (and the embeddings reported)
    many = texts * REPEATS
    start = time.perf_counter()
    engine.embed(many)
    elapsed = time.perf_counter() - start
    return emb, len(many) / elapsed if elapsed > 0 else float("inf")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    pairs = read_pairs(args.pairs)
    texts = pairs.unique_texts()
    cpu = Engine(args.algorithm, backend="cpu")
    alg = cpu.algorithm
    rows: list[tuple[str, str]] = []
    cpu_emb, cpu_rate = _rate(cpu, texts)
    rho = score_embeddings(pairs, texts, cpu_emb)[0]
    if np.isnan(rho):  # as sae eval says it
        log.warning("%s: the correlations are undefined (the gold scores or the cosines are all equal)", args.pairs)
    rows.append(("Algorithm", f"{alg.name} {alg.content_hash[:12]} ({alg.dim}-d, {len(alg.rules)} rules, "
                 f"{alg.n_phrases} phrases)"))
    rows.append(("sample", f"{len(pairs)} pairs, {len(texts)} sentences ({Path(args.pairs).name})"))
    rows.append(("backend cpu", f"{cpu.backend.description}"))
    rows.append(("  sentences/s (cpu)", f"{cpu_rate:,.0f}"))
    rows.append(("  Spearman on the sample (cpu)", f"{rho:.4f}"))
    # The first sentence the rules rewrite, to show what annealing does.
    for text in texts:
        ex = cpu.explain(text)
        committed = int((ex.journal["outcome"] == COMMITTED).sum())
        if committed:
            rows.append(("  example", f"{text!r}: {len(ex.initial)} items -> {len(ex.final)} after "
                         f"{committed} committed rewrite(s): {' '.join(ex.symbols)}"))
            break

    if args.backend == "cpu":
        rows.append(("GPU", "not asked (--backend cpu)"))
    else:
        try:
            gpu = Engine(alg, backend="gpu", adapter=args.adapter)
        except InputError as exc:
            if args.backend == "gpu":  # asked for by name: an error, as for every command (README)
                raise
            rows.append(("GPU", f"no GPU backend/adapter ({exc})"))
        else:
            gpu_emb, gpu_rate = _rate(gpu, texts)
            diff = float(np.abs(gpu_emb - cpu_emb).max()) if len(texts) else 0.0
            rows.append((f"backend {gpu.backend.name}", gpu.backend.description))
            rows.append((f"  sentences/s ({gpu.backend.name})", f"{gpu_rate:,.0f}"))
            rows.append((f"  Spearman on the sample ({gpu.backend.name})",
                         f"{score_embeddings(pairs, texts, gpu_emb)[0]:.4f}"))
            verdict = "agree" if diff <= EMBEDDING_TOLERANCE else "DISAGREE"
            rows.append(("  CPU vs GPU", f"{verdict}: max |difference| {diff:.2e} (bound {EMBEDDING_TOLERANCE:.0e})"))

    table = Table(title="sae demo", show_header=True)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    Console(markup=False).print(table)  # the sample's texts are shown as they are
    return 0
