"""``sae embed INPUT -o OUT``: embed a corpus a chunk at a time, resumable, locally or with Ray."""

from __future__ import annotations

import argparse
import logging

from sae.cli.common import add_engine_options, engine_from_args, positive_int
from sae.cli.progress import ProgressBar
from sae.corpus.job import DEFAULT_CHUNK_ROWS, EmbedOptions, Job, run_job
from sae.corpus.sinks import DTYPES
from sae.engine import LONG_TEXTS
from sae.ray_address import check_ray_address

log = logging.getLogger("sae")

#: Inputs with at least this many texts left to embed get a progress bar.
PROGRESS_MIN = 2000


def column_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected column names separated by commas")
    return names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed a corpus into Parquet or .npy (streaming, resumable, datasets, Ray)",
        description="Embed every text of INPUT and write OUT: Parquet with columns text (string), "
        "embedding (fixed-size list of float32) and any kept columns, rows in input order; or a "
        "(rows, dim) array when OUT ends in .npy. The input is read, embedded and written a chunk at "
        "a time, so memory does not grow with the input; OUT appears only when complete.",
    )
    p.add_argument("input", metavar="INPUT", help="a .txt file (one text per line), a .parquet/.arrow file, "
                   "- for stdin, a named pipe such as <(zcat corpus.txt.gz), or a directory or glob of "
                   "Parquet files (a dataset)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="a .parquet file, a .npy file (embeddings only), or a directory for a dataset")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command after its last finished chunk")
    p.add_argument("--text-column", default="text", metavar="NAME",
                   help="the column of a table input that holds the texts (default: text)")
    p.add_argument("--keep-columns", type=column_list, default=(), metavar="A,B",
                   help="other columns of a table input to copy to the output")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="of the embeddings written (default float32)")
    p.add_argument("--long-texts", choices=LONG_TEXTS, default="window",
                   help="a text longer than the stream (128 tokens): embedded as windows cut at word starts and "
                        "summed (default), or truncated to its first 128 tokens with a warning")
    p.add_argument("--chunk-rows", type=positive_int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                   help=f"rows read, embedded and written at a time: a Parquet row group, a resume step "
                   f"(default {DEFAULT_CHUNK_ROWS})")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="embed with Ray Data workers, one engine each (pip install 'sae[ray]'); ADDRESS "
                   "of the cluster, default: the one ray.init() finds, else a local one. Put it last or "
                   "write --ray=ADDRESS")
    p.add_argument("--ray-workers", type=positive_int, default=None, metavar="N",
                   help="engines for --ray (default: one per --threads CPUs of the cluster, "
                   "or one per GPU with --backend gpu)")
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = EmbedOptions(text_column=args.text_column, keep_columns=args.keep_columns, dtype=args.dtype,
                           chunk_rows=args.chunk_rows, resume=args.resume)
    if args.ray:
        check_ray_address(args.ray, "--ray")  # before OUT is touched
    job = Job(args.input, args.output, options)  # checks the input and OUT before the engine loads
    bar = ProgressBar("embedding", min_rows=PROGRESS_MIN)
    try:
        if args.ray is not None:
            from sae.corpus.cluster import EngineSpec, require_ray, run_job_ray

            require_ray()
            spec, alg = EngineSpec.from_options(args.algorithm, args.backend, args.batch_size, args.threads,
                                                args.adapter, args.long_texts)
            summary = run_job_ray(job, spec, dim=alg.dim, address=args.ray or None, workers=args.ray_workers,
                                  progress=bar)
            dim = alg.dim
        else:
            engine = engine_from_args(args)
            summary = run_job(job, engine, progress=bar)
            dim = engine.dim
    except KeyboardInterrupt:
        bar.stop()  # before the message, which the bar would otherwise draw over
        log.warning("interrupted; `sae embed ... --resume` continues after the last finished chunk")
        raise
    finally:
        bar.stop()
    where = args.output if len(summary.outputs) == 1 else f"{len(summary.outputs)} files in {args.output}"
    resumed = summary.rows - summary.embedded
    log.info("wrote %d embeddings (dim %d) to %s in %.2f s (%.0f texts/s%s)", summary.rows, dim, where,
             summary.seconds, summary.rate, f"; {resumed} resumed" if resumed else "")
    return 0
