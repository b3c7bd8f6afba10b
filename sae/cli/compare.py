"""``sae compare [INPUT]``: run the CPU and the GPU path and report agreement per stage."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sae.batch import ProgramBatch
from sae.cli.common import add_engine_options
from sae.layout import EMBEDDING_TOLERANCE

#: Texts used when no INPUT is given.
BUILTIN_TEXTS = (
    "A man is playing a guitar on the street.",
    "The new york city skyline at night is not small.",
    "Two dogs run through the snow, and a cat watches them.",
    "She was not happy with the results of the test.",
    "The red house on the hill is very old.",
    "",
    "   ",
    "Prices rose sharply after the announcement!",
    "A woman eats food while reading a book about birds.",
    "Is this the way to the station?",
    "Players are playing, runners are running, and nobody is sad.",
    "1 2 3 4 5 6 7 8 9 10",
)
#: How many differing document indices each stage lists.
SHOW = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="check that the CPU and the GPU path agree",
        description="Run the numpy and the WGSL path on the same texts and report, per stage, "
        "whether they agree: the first step's bid keys, the final ProgramStreams (items, lengths, "
        "journals) byte for byte, and the embeddings within 1e-5. Exit 1 on any mismatch, "
        "2 when no GPU adapter can run sae.",
    )
    p.add_argument("input", metavar="INPUT", nargs="?",
                   help=".txt (one text per line), .parquet/.arrow with a text column, or - for stdin "
                   "(default: a few built-in sentences)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    add_engine_options(p, backend=False, threads=False)  # both backends run, one batch at a time
    p.set_defaults(run=run)


class _Stage:
    """Agreement of one stage: the indices of differing documents (and a float measure)."""

    def __init__(self, name: str) -> None:
        self.name, self.docs, self.max_abs = name, [], 0.0

    def add(self, start: int, differs: np.ndarray) -> None:
        self.docs.extend(int(i) + start for i in np.flatnonzero(differs))

    def as_dict(self) -> dict:
        out = {"stage": self.name, "equal": not self.docs, "n_differing": len(self.docs),
               "differing": self.docs[:SHOW]}
        if self.name == "embeddings":
            out["max_abs_diff"] = self.max_abs
            out["tolerance"] = EMBEDDING_TOLERANCE
        return out


def compare(texts: list[str], algorithm: str | None, adapter: str | None, batch_size: int | None) -> dict:
    """Run both backends on ``texts`` in batches of ``batch_size`` (default: one GPU chunk);
    the report ``sae compare --json`` prints."""
    from sae.engine import Engine
    from sae.gpu import GpuBackend

    engine = Engine(algorithm, backend="cpu", batch_size=batch_size)
    alg, caps = engine.algorithm, engine.caps
    gpu = GpuBackend(alg, caps, adapter=adapter)
    token_ids = engine.documents(engine.tokenize(texts))  # a long text's windows, each a document
    batch_size = gpu.default_batch if batch_size is None else batch_size
    batch_size = min(batch_size, max(len(token_ids), 1))  # the batches are allocated whole, up front
    backends = {"cpu": engine.backend, "gpu": gpu}
    batches = {name: ProgramBatch(batch_size, caps) for name in backends}
    seconds = dict.fromkeys(backends, 0.0)
    stages = {name: _Stage(name) for name in ("bids", "items", "lengths", "journal", "embeddings")}
    for start in range(0, len(token_ids), batch_size):
        ids = token_ids[start : start + batch_size]
        n = len(ids)
        out = {}
        for name, backend in backends.items():
            batch = batches[name]
            batch.widen(ids, alg.symbol_rows)
            bids = backend.bids(batch)
            t0 = time.perf_counter()
            backend.anneal(batch)
            emb = backend.execute(batch)
            seconds[name] += time.perf_counter() - t0
            out[name] = (bids, emb)
        c, g = batches["cpu"], batches["gpu"]
        stages["bids"].add(start, (out["cpu"][0] != out["gpu"][0]).reshape(n, out["cpu"][0][0].size if n else 0).any(axis=1))
        item_words = caps.stream * c.items.dtype.itemsize // 4
        stages["items"].add(start, (c.items[:n].view(np.uint32).reshape(n, item_words)
                                    != g.items[:n].view(np.uint32).reshape(n, item_words)).any(axis=1))
        stages["lengths"].add(start, c.lengths[:n] != g.lengths[:n])
        journal_words = c.journal.shape[1] * c.journal.dtype.itemsize // 4
        journal_differs = (c.journal_len[:n] != g.journal_len[:n]) | (
            c.journal[:n].view(np.uint32).reshape(n, journal_words)
            != g.journal[:n].view(np.uint32).reshape(n, journal_words)
        ).any(axis=1)
        stages["journal"].add(start, journal_differs)
        diff = np.abs(out["cpu"][1] - out["gpu"][1]).max(axis=1) if n and alg.dim else np.zeros(n)
        stages["embeddings"].add(start, ~(diff <= EMBEDDING_TOLERANCE))
        if n:
            stages["embeddings"].max_abs = max(stages["embeddings"].max_abs, float(diff.max()))
    report = [s.as_dict() for s in stages.values()]
    return {
        "algorithm": alg.name,
        "adapter": gpu.description,
        "texts": len(texts),
        "documents": len(token_ids),
        "stages": report,
        "equal": all(s["equal"] for s in report),
        "seconds": seconds,
    }


def run(args: argparse.Namespace) -> int:
    if args.input is None:
        texts = list(BUILTIN_TEXTS)
    else:
        from sae.io import read_texts

        texts = read_texts(args.input)
    result = compare(texts, args.algorithm, args.adapter, args.batch_size)
    if args.json:
        print(json.dumps(result))
        return 0 if result["equal"] else 1
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(markup=False)  # the adapter's name is shown as it is
    table = Table(title=f"CPU vs GPU on {result['texts']} texts ({result['adapter']})")
    for col in ("stage", "agree", "differing documents"):
        table.add_column(col)
    for s in result["stages"]:
        label = s["stage"]
        if "max_abs_diff" in s:
            label += f" (max |Δ| {s['max_abs_diff']:.2e}, tol {s['tolerance']:.0e})"
        shown = ", ".join(map(str, s["differing"])) + (" …" if s["n_differing"] > len(s["differing"]) else "")
        table.add_row(label, Text("yes", style="green") if s["equal"] else Text("NO", style="red"),
                      f"{s['n_differing']}: {shown}" if s["n_differing"] else "")
    console.print(table)
    sec = result["seconds"]
    console.print(f"anneal + execute: cpu {sec['cpu']:.3f} s, gpu {sec['gpu']:.3f} s")
    return 0 if result["equal"] else 1
