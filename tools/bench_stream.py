"""Streaming ``sae embed``: peak memory on millions of texts, throughput against the in-memory path.

    python tools/bench_stream.py [--shared ../shared] [--texts 5000000] [--compare 500000] [--rounds 2]

Writes short synthetic texts to --workdir (default /tmp/sae-bench-stream): STS-B
sentences (train and dev) drawn by a seeded generator, or without ../shared random
words of the bundled tokenizer's vocabulary. Then, in one run:

1. throughput on --compare texts: ``sae embed`` (streaming) and the in-memory path it
   replaced (:func:`sae.corpus.embed_in_memory`: read every text, embed them in one call,
   write one table), each a process of its own, alternated --rounds times; it prints
   texts/s (the whole process: start, engine load, reading, embedding, writing), its CPU
   time (user + system: the work done, which a busy machine disturbs less than the wall
   time), peak memory (the process's maximum resident set, from ``wait4``), the ratios
   of each round and of the best rounds, and checks that both outputs hold the same rows;
2. peak memory and throughput of ``sae embed`` on --texts texts.

The machine may be shared: the load average is printed with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sae.cli.common import non_negative_int, positive_int  # noqa: E402
from sae.errors import run_script  # noqa: E402
from sae.evaluate import read_pairs  # noqa: E402

IN_MEMORY = """
import sys
from sae import Engine
from sae.corpus import embed_in_memory
embed_in_memory(sys.argv[1], sys.argv[2], Engine(backend="cpu"))
"""


def sentences(shared: Path) -> list[str]:
    """Unique STS-B sentences, or random word sequences when ../shared is absent."""
    files = [shared / "data/stsb/sts-train.csv", shared / "data/stsb/sts-dev.csv"]
    if all(f.exists() for f in files):
        unique: set[str] = set()
        for f in files:
            unique.update(read_pairs(f).unique_texts())
        return sorted(unique)
    from sae.algorithm import load_algorithm

    # An array once: rng.choice of a list converts all its ~20,000 words on every call (1m49s
    # for the pool); the same draws from the array give the same texts.
    vocab = np.array(sorted(w for w in load_algorithm(None).tokenizer.get_vocab() if w.isalpha()))
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(vocab, size=rng.integers(3, 16))) for _ in range(20_000)]


def write_texts(path: Path, n: int, pool: list[str]) -> Path:
    """``n`` texts drawn from ``pool`` with a fixed seed, one per line (kept when it exists)."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, n, 1_000_000):
            idx = rng.integers(0, len(pool), size=min(1_000_000, n - start))
            f.write("\n".join(pool[i] for i in idx))
            f.write("\n")
    tmp.rename(path)
    return path


def measure(cmd: list[str]) -> dict[str, float]:
    """Wall seconds and peak resident memory (bytes) of one process (``ru_maxrss``, which
    is right while this process stays small: see :func:`same_rows`)."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # drained as it runs: a full pipe would block the process
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode(errors='replace')}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_bytes": usage.ru_maxrss * 1024, "load_before": load, "load_after": os.getloadavg()[0]}


def streaming(src: Path, out: Path, extra: list[str]) -> dict[str, float]:
    return measure([sys.executable, "-m", "sae", "embed", str(src), "-o", str(out), "--backend", "cpu", *extra])


def in_memory(src: Path, out: Path) -> dict[str, float]:
    return measure([sys.executable, "-c", IN_MEMORY, str(src), str(out)])


SAME_ROWS = """
import sys
import pyarrow.parquet as pq
a, b = (pq.ParquetFile(p) for p in sys.argv[1:3])
rows = 0
for x, y in zip(a.iter_batches(65536), b.iter_batches(65536)):
    if not (x.column("text").equals(y.column("text")) and x.column("embedding").equals(y.column("embedding"))):
        sys.exit(1)
    rows += x.num_rows
sys.exit(0 if rows == a.metadata.num_rows == b.metadata.num_rows else 1)
"""


def same_rows(a: Path, b: Path) -> bool:
    """Whether two outputs hold the same texts and embeddings. In a process of its own:
    this one must stay small, since a child's peak memory on Linux starts from its
    parent's at fork."""
    return subprocess.run([sys.executable, "-c", SAME_ROWS, str(a), str(b)]).returncode == 0


def line(name: str, n: int, m: dict[str, float]) -> str:
    return (f"{name:<22} {n:>10,} texts {m['seconds']:7.1f} s {n / m['seconds']:>8,.0f} texts/s  "
            f"CPU {m['cpu_seconds']:7.1f} s  peak {m['peak_bytes'] / 2**20:>6,.0f} MiB  "
            f"load {m['load_before']:.2f} -> {m['load_after']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--workdir", default="/tmp/sae-bench-stream")
    ap.add_argument("--texts", type=non_negative_int, default=5_000_000, help="texts for the memory run (0: skip it)")
    ap.add_argument("--compare", type=non_negative_int, default=500_000, help="texts for the throughput comparison (0: skip)")
    ap.add_argument("--rounds", type=positive_int, default=2, help="alternating rounds of the comparison")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the outputs (several GB) in --workdir")
    args, embed_args = ap.parse_known_args()  # anything else goes to sae embed (e.g. --dtype float16)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pool = sentences(Path(args.shared))
    print(f"{os.cpu_count()} CPUs; {len(pool):,} distinct sentences; sae embed options: {embed_args or 'defaults'}")
    figures: dict[str, object] = {"cpus": os.cpu_count(), "embed_args": embed_args}

    if args.compare:
        src = write_texts(work / f"texts-{args.compare}.txt", args.compare, pool)
        rounds = []
        for r in range(args.rounds):
            # Alternate which goes first, so that a busy spell does not always hit the same one.
            order = ("streaming", "in_memory") if r % 2 == 0 else ("in_memory", "streaming")
            got = {}
            for name in order:
                if name == "streaming":
                    got[name] = streaming(src, work / "stream.parquet", embed_args)
                else:
                    got[name] = in_memory(src, work / "memory.parquet")
                print(line(f"round {r + 1} {name.replace('_', ' ')}", args.compare, got[name]))
            s, m = got["streaming"], got["in_memory"]
            ratio, cpu_ratio = m["seconds"] / s["seconds"], m["cpu_seconds"] / s["cpu_seconds"]
            print(f"{'':22} streaming / in-memory throughput: {ratio:.3f} by wall time, {cpu_ratio:.3f} by CPU time")
            rounds.append({"streaming": s, "in_memory": m, "ratio": ratio, "cpu_ratio": cpu_ratio})
        best_s = min(r["streaming"]["seconds"] for r in rounds)
        best_m = min(r["in_memory"]["seconds"] for r in rounds)
        cpu_s = min(r["streaming"]["cpu_seconds"] for r in rounds)
        cpu_m = min(r["in_memory"]["cpu_seconds"] for r in rounds)
        ratios = sorted(r["ratio"] for r in rounds)
        equal = same_rows(work / "stream.parquet", work / "memory.parquet")
        print(f"best rounds: streaming {args.compare / best_s:,.0f} texts/s, in memory {args.compare / best_m:,.0f} "
              f"texts/s, ratio {best_m / best_s:.3f} (target >= 0.90); median round ratio "
              f"{ratios[len(ratios) // 2]:.3f}; least CPU time: ratio {cpu_m / cpu_s:.3f}; same rows: {equal}")
        figures["compare"] = {"texts": args.compare, "rounds": rounds, "best_ratio": best_m / best_s,
                              "cpu_ratio": cpu_m / cpu_s, "same_rows": equal}
        for name in ("stream.parquet", "memory.parquet"):
            (work / name).unlink(missing_ok=True)

    if args.texts:
        src = write_texts(work / f"texts-{args.texts}.txt", args.texts, pool)
        out = work / "big.parquet"
        s = streaming(src, out, embed_args)
        size = out.stat().st_size
        print(line("streaming (memory)", args.texts, s))
        print(f"peak memory {s['peak_bytes'] / 2**30:.2f} GiB (target <= 1 GB = {1e9 / 2**30:.2f} GiB); "
              f"output {size / 2**30:.2f} GiB")
        figures["memory"] = {"texts": args.texts, **s, "output_bytes": size}
        if not args.keep:
            out.unlink()
            shutil.rmtree(work / f".{out.name}.resume", ignore_errors=True)

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"(this script's own peak: {own:,.0f} MiB; the children's figures include at most that much)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
