"""``sae embed INPUT -o OUT.parquet``: embed every text of a file, in input order."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sae.cli.common import add_engine_options, engine_from_args
from sae.io import check_writable, read_texts, write_embeddings

log = logging.getLogger("sae")

#: Inputs with at least this many texts get a progress bar.
PROGRESS_MIN = 2000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed texts into a Parquet file",
        description="Embed every text of INPUT and write OUT.parquet with columns "
        "text (string) and embedding (fixed-size list of float32), rows in input order.",
    )
    p.add_argument("input", metavar="INPUT", help="a .txt file (one text per line), a .parquet/.arrow file "
                   "with a 'text' column, or - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUT.parquet", help="output Parquet file")
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_writable(args.output)
    texts = read_texts(args.input)
    engine = engine_from_args(args)
    start = time.perf_counter()
    if len(texts) >= PROGRESS_MIN and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("embedding", total=len(texts))
            embeddings = engine.embed(texts, progress=lambda k: bar.advance(task, k))
    else:
        embeddings = engine.embed(texts)
    elapsed = time.perf_counter() - start
    write_embeddings(args.output, texts, embeddings)
    rate = len(texts) / elapsed if elapsed > 0 else float("inf")
    log.info("wrote %d embeddings (dim %d) to %s in %.2f s (%.0f texts/s)",
             len(texts), engine.dim, args.output, elapsed, rate)
    return 0
