"""What a batch of mixed lengths costs the numpy path, against length-sorted batches.

    python tools/bench_mixed.py [--shared ../shared] [--batch 520] [--repeats 5]

A server batches whatever requests arrive together: texts of every length in one
batch. ``Engine.embed`` sorts a corpus by length first, so its batches hold texts of
neighbouring lengths. This embeds the STS-B dev sentences (or the bundled demo sample
without ../shared) with one engine thread three ways, best of ``--repeats`` passes:

- *random*: shuffled (seed 0), one ``Engine.embed_tokens`` call per ``--batch`` texts;
- *neighbours*: sorted by length, one call per ``--batch`` texts (the same call count);
- *corpus*: everything in one call (the engine's own length-sorted batches, 2,048 texts
  on the numpy path since the default batch grew);

and prints µs per text and the ratios. "random / neighbours" is what mixing
lengths costs per text; it bounds what a one-engine server reaches against
in-process embedding (docs/SERVE.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import dev_sentences, timed  # noqa: E402  (tools/bench.py, beside this file)

from sae.cli.common import positive_int  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.errors import run_script  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    ap.add_argument("--batch", type=positive_int, default=520, help="texts per call (default 520, a 64-client batch)")
    ap.add_argument("--repeats", type=positive_int, default=5)
    args = ap.parse_args()

    texts = dev_sentences(Path(args.shared))
    engine = Engine(args.algorithm, backend="cpu", threads=1)
    ids = engine.tokenize(texts)
    lengths = np.array([len(t) for t in ids])
    shuffled = np.random.default_rng(0).permutation(len(ids))
    by_length = np.argsort(lengths, kind="stable")

    def calls(order: np.ndarray) -> list[list[list[int]]]:
        return [[ids[i] for i in order[s : s + args.batch]] for s in range(0, len(order), args.batch)]

    random_calls, neighbour_calls = calls(shuffled), calls(by_length)
    rows = {
        "random": timed(lambda: [engine.embed_tokens(c) for c in random_calls], repeat=args.repeats),
        "neighbours": timed(lambda: [engine.embed_tokens(c) for c in neighbour_calls], repeat=args.repeats),
        "corpus": timed(lambda: engine.embed_tokens(ids), repeat=args.repeats),
    }
    widest = np.mean([max(map(len, c)) for c in random_calls])
    print(f"{len(texts)} texts, mean {lengths.mean():.1f} tokens; random batches of {args.batch}: "
          f"longest {widest:.0f} tokens on average; one thread, best of {args.repeats}")
    for name, seconds in rows.items():
        print(f"  {name:<11} {seconds * 1e6 / len(texts):6.1f} µs/text  {len(texts) / seconds:9,.0f} texts/s")
    print(f"  random / neighbours {rows['random'] / rows['neighbours']:.3f}   "
          f"random / corpus {rows['random'] / rows['corpus']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
