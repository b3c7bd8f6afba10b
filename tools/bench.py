"""Benchmark sae against the anchors, in one run: a rich table and a JSON file.

    python tools/bench.py [--shared ../shared] [--json out/bench.json]
                          [--m2v-python /path/to/python --m2v-model DIR]

Measures, on the STS-B dev sentences (or the bundled demo sample without ../shared):
sentences/s and tokens/s of the CPU and GPU paths over batch sizes and text lengths,
tokenization alone (the tokenizer's own call, the floor of a path that tokenizes whole
texts with it, Model2Vec's; and sae's cache of words, warm), Model2Vec on the same texts when a
Python with model2vec and a model are given (it is not a dependency of sae), peak
host memory, GPU buffer bytes, and the memory the annealing loop allocates per step.
Figures are only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sae.batch import ProgramBatch  # noqa: E402
from sae.cli.common import positive_int  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.errors import InputError, run_script  # noqa: E402
from sae.evaluate import read_pairs  # noqa: E402


def dev_sentences(shared: Path) -> list[str]:
    """The unique STS-B dev sentences, or the bundled demo sample without ../shared."""
    path = shared / "data" / "stsb" / "sts-dev.csv"
    return read_pairs(path if path.exists() else ROOT / "sae" / "data" / "demo_pairs.tsv").unique_texts()


def texts_name(shared: Path) -> str:
    """What :func:`dev_sentences` reads, for the reports: "STS-B dev", or "bundled demo"."""
    return "STS-B dev" if (shared / "data" / "stsb" / "sts-dev.csv").exists() else "bundled demo"


def of_length(texts: list[str], engine: Engine, tokens: int) -> list[str]:
    """Texts of about ``tokens`` tokens each, made by joining sentences in order.

    None is longer than the stream capacity, so the sweep times whole texts rather
    than truncated ones.
    """
    cap = engine.caps.stream
    out, cur, n = [], [], 0
    lengths = [len(t) for t in engine.tokenize(texts)]
    for text, length in zip(texts, lengths):
        if cur and n + length > cap:
            out.append(" ".join(cur))
            cur, n = [], 0
        if length > cap:
            continue
        cur.append(text)
        n += length
        if n >= tokens:
            out.append(" ".join(cur))
            cur, n = [], 0
    return out or texts


def counts(text: str) -> list[int]:
    """An argparse type: comma-separated integers, each at least 1 (``256,1024``)."""
    return [positive_int(item) for item in text.split(",")]


def timed(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` wall-clock runs (the first run warms caches and pipelines)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_engine(engine: Engine, texts: list[str]) -> dict:
    tokens = sum(len(t) for t in engine.tokenize(texts))
    seconds = timed(lambda: engine.embed(texts))
    return {"texts": len(texts), "tokens": tokens, "seconds": seconds,
            "texts_per_s": len(texts) / seconds, "tokens_per_s": tokens / seconds}


def allocation_per_step(engine: Engine, texts: list[str]) -> dict:
    """Peak temporary and retained bytes of one annealing run, per step taken."""
    ids = engine.tokenize(texts[: engine.batch_size])
    batch = ProgramBatch(engine.batch_size, engine.caps)
    batch.widen(ids, engine.algorithm.symbol_rows)
    engine.backend.anneal(batch)  # warm-up sizes the scratch buffers
    batch.widen(ids, engine.algorithm.symbol_rows)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    engine.backend.anneal(batch)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    used = batch.journal_len[: batch.n]
    steps = int(batch.journal["step"][: batch.n].max()) + 1 if used.any() else 0
    return {"documents": batch.n, "steps": steps, "peak_temporary_bytes": peak - base,
            "retained_bytes": current - base,
            "peak_temporary_bytes_per_document": (peak - base) / max(batch.n, 1)}


def model2vec(python: str, model: str, texts: list[str], save: Path | None = None) -> dict | None:
    """Time Model2Vec in its own interpreter on the same texts (best of 3 after a warm-up).

    ``save``: also write its embeddings there (``.npy``), for scoring them.
    """
    code = """
import json, sys, time
import numpy as np
from model2vec import StaticModel
model = StaticModel.from_pretrained(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
model.encode(texts)
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    emb = model.encode(texts)
    best = min(best, time.perf_counter() - start)
if sys.argv[3]:
    np.save(sys.argv[3], emb)
print(json.dumps({"seconds": best, "dim": int(emb.shape[1])}))
"""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f)
    try:
        out = subprocess.run([python, "-c", code, model, f.name, str(save or "")],
                             capture_output=True, text=True, timeout=600)
    finally:
        Path(f.name).unlink()
    if out.returncode != 0:
        print(f"model2vec failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"texts": len(texts), "seconds": result["seconds"], "dim": result["dim"],
            "texts_per_s": len(texts) / result["seconds"]}


def model2vec_anchor(python: str | None, model: str | None,
                     default: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The Model2Vec anchor's interpreter and model directory, checked before any timing: a
    path given that does not exist, or one of the two given without the other, is an
    :class:`InputError` (the ratios would otherwise be missing from the report without a
    word, or the run fail at its end). Neither given: ``default`` when both its paths exist,
    else None (not run)."""
    if python is None and model is None:
        return default if default and all(Path(p).exists() for p in default) else None
    if python is None or model is None:
        raise InputError("--m2v-python and --m2v-model go together: give both, or neither")
    if not Path(python).is_file():
        raise InputError(f"--m2v-python {python}: no such interpreter")
    if not Path(model).is_dir():
        raise InputError(f"--m2v-model {model}: no such model directory")
    return python, model


def memory_bandwidth() -> float:
    """Bytes/s of a large numpy copy: the ceiling for streaming token vectors."""
    a = np.ones(64 * 1024 * 1024 // 4, np.float32)
    b = np.empty_like(a)
    seconds = timed(lambda: np.copyto(b, a), repeat=5)
    return 2 * a.nbytes / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--algorithm", help="Algorithm directory (default: bundled)")
    ap.add_argument("--json", type=Path, default=ROOT / "out" / "bench.json")
    ap.add_argument("--m2v-python", help="a Python interpreter with model2vec installed")
    ap.add_argument("--m2v-model", help="a Model2Vec model directory")
    ap.add_argument("--batch-sizes", type=counts, default="256,1024,4096")
    ap.add_argument("--lengths", type=counts, default="16,64,120", help="approximate tokens per text (at most 128)")
    args = ap.parse_args()
    anchor = model2vec_anchor(args.m2v_python, args.m2v_model)

    texts = dev_sentences(args.shared)
    results: dict = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                                 "python": platform.python_version()},
                     "texts": len(texts), "texts_name": texts_name(args.shared), "rows": [], "sweeps": []}
    cpu = Engine(args.algorithm, backend="cpu")
    paths = ["cpu"]
    try:
        gpu = Engine(cpu.algorithm, backend="gpu")
        paths.append("gpu")
        results["gpu_adapter"] = gpu.backend.description
        results["gpu_buffer_bytes"] = getattr(gpu.backend, "buffer_bytes", None)
    except InputError as exc:
        results["gpu_adapter"] = f"none ({exc})"

    # Tokenization alone: the tokenizer's own call (what Model2Vec pays), and sae's
    # Engine.tokenize, which puts a cache of words in front of it (sae.word_cache; warm
    # after the first run, as in every timed embed).
    tokenizer = cpu.algorithm.tokenizer
    tok_seconds = timed(lambda: tokenizer.encode_batch_fast(texts, add_special_tokens=False))
    results["tokenize"] = {"seconds": tok_seconds, "texts_per_s": len(texts) / tok_seconds}
    cache_seconds = timed(lambda: cpu.tokenize(texts))
    results["tokenize_word_cache"] = {"seconds": cache_seconds, "texts_per_s": len(texts) / cache_seconds}
    results["memory_bandwidth_bytes_per_s"] = memory_bandwidth()

    for name in paths:
        for bs in args.batch_sizes:
            engine = Engine(cpu.algorithm, backend=name, batch_size=bs)
            row = {"path": name, "batch_size": bs, "length": "dev", **bench_engine(engine, texts)}
            results["rows"].append(row)
        engine = Engine(cpu.algorithm, backend=name, batch_size=1024)
        for length in args.lengths:
            row = {"path": name, "batch_size": 1024, "length": length,
                   **bench_engine(engine, of_length(texts, engine, length))}
            results["rows"].append(row)
        # Cost model: the same texts with fewer rules and fewer annealing steps.
        alg = cpu.algorithm
        n_rules = len(alg.rules)
        for rules in sorted({0, n_rules // 2, n_rules}):
            variant = replace(alg, rules=alg.rules[:rules])
            row = {"path": name, "batch_size": 1024, "length": "dev", "rules": rules,
                   "max_steps": alg.params.max_steps,
                   **bench_engine(Engine(variant, backend=name, batch_size=1024), texts)}
            results["sweeps"].append(row)
        for steps in sorted({0, alg.params.max_steps // 4, alg.params.max_steps}):
            variant = replace(alg, params=replace(alg.params, max_steps=steps))
            row = {"path": name, "batch_size": 1024, "length": "dev", "rules": n_rules, "max_steps": steps,
                   **bench_engine(Engine(variant, backend=name, batch_size=1024), texts)}
            results["sweeps"].append(row)
    results["cpu_allocation"] = allocation_per_step(cpu, texts)
    if anchor:
        results["model2vec"] = model2vec(*anchor, texts)
    results["peak_host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # What bounds this job here: tokenization, and streaming dim floats per token.
    dev_cpu = next(r for r in results["rows"] if r["path"] == "cpu" and r["length"] == "dev")
    bytes_per_text = dev_cpu["tokens"] / dev_cpu["texts"] * cpu.dim * 4
    results["limits"] = {
        "tokenize_texts_per_s": results["tokenize"]["texts_per_s"],
        "tokenize_word_cache_texts_per_s": results["tokenize_word_cache"]["texts_per_s"],
        "bandwidth_texts_per_s": results["memory_bandwidth_bytes_per_s"] / bytes_per_text,
    }
    report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")
    return 1 if anchor and results["model2vec"] is None else 0  # the anchor asked for failed (said above)


def report_console():
    """The reports' console: markup off (an adapter's name is shown as it is) and, when the
    output is not a terminal (a log file, a pipe), wide enough that no figure is cut to "…"
    (rich otherwise lays tables out in 80 columns there)."""
    from rich.console import Console

    console = Console(markup=False)
    return console if console.is_terminal else Console(markup=False, width=200)


def report(results: dict) -> None:
    from rich.table import Table

    console = report_console()
    m2v = results.get("model2vec")
    table = Table(title=f"sae benchmark — {results['texts']} {results['texts_name']} texts; GPU: {results['gpu_adapter']}")
    for col in ("path", "batch", "text length", "texts/s", "tokens/s", "vs Model2Vec", "vs tokenize"):
        table.add_column(col, justify="right")
    tok = results["tokenize"]["texts_per_s"]
    for r in results["rows"]:
        vs_m2v = f"{r['texts_per_s'] / m2v['texts_per_s']:.2f}x" if m2v and r["length"] == "dev" else "—"
        vs_tok = f"{r['texts_per_s'] / tok:.2f}x" if r["length"] == "dev" else "—"
        table.add_row(r["path"], str(r["batch_size"]), str(r["length"]), f"{r['texts_per_s']:,.0f}",
                      f"{r['tokens_per_s']:,.0f}", vs_m2v, vs_tok)
    if m2v:
        table.add_row("model2vec", "—", "dev", f"{m2v['texts_per_s']:,.0f}", "—", "1.00x",
                      f"{m2v['texts_per_s'] / tok:.2f}x")
    table.add_row("tokenizer only", "—", "dev", f"{tok:,.0f}", "—", "—", "1.00x")
    cache = results["tokenize_word_cache"]["texts_per_s"]
    table.add_row("sae tokenize (word cache, warm)", "—", "dev", f"{cache:,.0f}", "—", "—", f"{cache / tok:.2f}x")
    console.print(table)
    sweep = Table(title="cost model: rules and annealing steps (dev texts, batch 1024)")
    for col in ("path", "rules", "max steps", "texts/s", "ms per 1k texts"):
        sweep.add_column(col, justify="right")
    for r in results["sweeps"]:
        sweep.add_row(r["path"], str(r["rules"]), str(r["max_steps"]), f"{r['texts_per_s']:,.0f}",
                      f"{1e6 / r['texts_per_s']:.1f}")
    console.print(sweep)
    alloc = results["cpu_allocation"]
    console.print(
        f"CPU annealing of {alloc['documents']} docs, {alloc['steps']} steps: peak temporaries "
        f"{alloc['peak_temporary_bytes'] / 1e6:.1f} MB ({alloc['peak_temporary_bytes_per_document']:,.0f} B/doc), "
        f"retained after the run {alloc['retained_bytes']} B"
    )
    if results.get("gpu_buffer_bytes"):
        console.print(f"GPU buffers: {results['gpu_buffer_bytes'] / 1e6:.1f} MB")
    lim = results["limits"]
    console.print(
        f"limits here: tokenization {lim['tokenize_texts_per_s']:,.0f} texts/s (the tokenizer; "
        f"{lim['tokenize_word_cache_texts_per_s']:,.0f} through sae's word cache, warm); memory bandwidth "
        f"{results['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s = {lim['bandwidth_texts_per_s']:,.0f} texts/s "
        f"streaming token vectors; peak RSS {results['peak_host_rss_bytes'] / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(run_script(main))
