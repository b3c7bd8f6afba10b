"""``sae profile [INPUT] --trace OUT.json``: where the time goes, per pass and per stage."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sae.cli.common import add_engine_options, engine_from_args
from sae.errors import InputError
from sae.io import check_writable, read_texts, write_atomically
from sae.profile import Profiler

log = logging.getLogger("sae")

SAMPLE = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "The cat sat on the mat and would not move.",
    "Stocks fell sharply after the announcement.",
] * 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="time every pass and stage; write a Chrome trace",
        description="Embed INPUT (default: a built-in sample) with a profiler attached: per-pass GPU "
        "timings from timestamp queries (one event per pass per annealing step), CPU stages "
        "(tokenize, upload, submit, readback), a table, and a Chrome trace event file that "
        "Perfetto (ui.perfetto.dev) and chrome://tracing load.",
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help="texts as for 'sae embed' (default: a sample)")
    p.add_argument("--trace", required=True, metavar="OUT.json", help="Chrome trace file to write")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_writable(args.trace, inputs=(args.input,))
    if Path(args.trace).suffix.lower() != ".json":  # as --png: a trace named .txt would be opened as text
        raise InputError(f"{args.trace}: --trace writes a Chrome trace (JSON); name the file .json")
    texts = read_texts(args.input) if args.input is not None else SAMPLE
    engine = engine_from_args(args)
    engine.embed(texts[: min(len(texts), 64)])  # warm-up: pipelines and buffers, not measured
    profiler = Profiler()
    engine.profiler = profiler
    with profiler.scope("embed", texts=len(texts)):
        engine.embed(texts)
    engine.profiler = None
    trace = profiler.chrome_trace()
    write_atomically(args.trace, lambda tmp: Path(tmp).write_text(json.dumps(trace)))
    gpu, cpu = profiler.summary("gpu"), profiler.summary("cpu")
    counters = profiler.batch_counters()
    if args.json:
        print(json.dumps({"backend": engine.backend.name, "device": engine.backend.description,
                          "gpu_clock": profiler.gpu_clock, "texts": len(texts), "gpu": gpu, "cpu": cpu,
                          "counters": counters, "trace": args.trace}))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # adapter, scope (rule) and file names are shown as they are
    if gpu:
        table = Table(title=f"GPU passes on {engine.backend.description} — {profiler.gpu_clock}")
        _fill(table, gpu, "pass")
        console.print(table)
    else:
        console.print(f"no GPU track: the {engine.backend.name} backend ran", style="yellow")
    if counters:
        table = Table(title=f"host-device traffic: {counters['batches']} batch(es)")
        for col in ("counter", "per batch", "total"):
            table.add_column(col, justify="left" if col == "counter" else "right")
        for name, total in counters["total"].items():
            table.add_row(name, f"{counters['per_batch'][name]:.1f}", str(total))
        console.print(table)
    table = Table(title="CPU stages (nested: shares are of the whole run)")
    _fill(table, cpu, "stage")
    console.print(table)
    console.print(f"trace: {args.trace} (open in ui.perfetto.dev or chrome://tracing)")
    return 0


def _fill(table, rows: list[dict], what: str) -> None:
    for col in (what, "calls", "total ms", "mean µs", "share"):
        table.add_column(col, justify="left" if col == what else "right")
    for r in rows:
        table.add_row(r["name"], str(r["calls"]), f"{r['total_ms']:.2f}", f"{r['mean_us']:.1f}",
                      f"{100 * r['share']:.1f}%")
