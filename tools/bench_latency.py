"""Latency of one small call: ``Engine.embed_tokens`` of 1, 16 or 64 texts on the numpy path.

    python tools/bench_latency.py [--shared ../shared] [--algorithm DIR] [--sizes 1,16,64] [--calls 800]

What a service pays per engine batch when requests come one at a time: the annealing
loop's fixed cost per call, which large batches hide. The texts are the STS-B dev
sentences (the bundled demo pairs without ../shared), tokenized once beforehand; one
engine thread; best of three passes of ``--calls`` calls per size, each on the next
texts in turn. Only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import counts, dev_sentences  # tools/bench.py, beside this file

from sae.cli.common import positive_int
from sae.engine import Engine
from sae.errors import run_script

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    ap.add_argument("--sizes", type=counts, default="1,16,64", help="texts per call (default 1,16,64)")
    ap.add_argument("--calls", type=positive_int, default=800, help="calls per size and pass (default 800)")
    args = ap.parse_args()
    texts = dev_sentences(Path(args.shared))
    engine = Engine(args.algorithm, backend="cpu", threads=1)
    ids = engine.tokenize(texts)
    engine.embed_tokens(ids)  # the transformed rows every later call reads
    sizes = args.sizes
    # A size past the corpus repeats its texts: a shorter call would be timed as that size.
    need = max(sizes) + 1
    pool = ids * -(-need // len(ids)) if len(ids) < need else ids
    best = {n: float("inf") for n in sizes}
    for _ in range(3):
        for n in sizes:
            start = time.perf_counter()
            for call in range(args.calls):
                at = call * n % max(len(pool) - n, 1)
                engine.embed_tokens(pool[at : at + n])
            best[n] = min(best[n], (time.perf_counter() - start) / args.calls)
    repeated = f" (repeated to fill calls of {max(sizes)})" if pool is not ids else ""
    print(f"Algorithm {engine.algorithm.name} {engine.algorithm.content_hash[:12]}, {len(texts)} texts{repeated}, "
          "numpy, 1 thread")
    for n in sizes:
        print(f"{n:5} text(s) per call: {best[n] * 1e3:7.3f} ms per call, {best[n] / n * 1e6:8.1f} µs per text")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
