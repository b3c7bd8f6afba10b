"""Tokenizing the STS-B dev sentences: the tokenizer against the word cache (sae.word_cache).

    python tools/bench_tokenize.py [--shared ../shared] [--algorithm DIR] [--rounds 5]

Rows, each in µs per text, best of ``--rounds``, in one process on this machine: the
Hugging Face tokenizer (``encode_batch_fast``, its thread pool on every core), the word
cache cold (a new cache each round: every piece tokenized once), warm (the same texts
again), and after the train sentences (without ../shared: the cold figure twice).
Checks that every row gives the tokenizer's ids. Only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import dev_sentences, texts_name  # tools/bench.py, beside this file

from sae.algorithm import load_algorithm
from sae.cli.common import positive_int
from sae.errors import run_script
from sae.evaluate import read_pairs
from sae.word_cache import TokenIds

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    ap.add_argument("--rounds", type=positive_int, default=5)
    args = ap.parse_args()
    texts = dev_sentences(Path(args.shared))
    train_path = Path(args.shared) / "data" / "stsb" / "sts-train.csv"
    train = read_pairs(train_path).unique_texts() if train_path.exists() else []
    tokenizer = load_algorithm(args.algorithm).tokenizer

    def tokenizer_ids(batch):
        return [e.ids for e in tokenizer.encode_batch_fast(batch, add_special_tokens=False)]

    expected = tokenizer_ids(texts)

    def timed(make, prepare=None) -> float:
        best = float("inf")
        for _ in range(args.rounds):
            run = make()
            if prepare is not None:
                prepare(run)
            start = time.perf_counter()
            ids = run(texts)
            best = min(best, time.perf_counter() - start)
            assert ids == expected, "token ids differ from the tokenizer's"
        return best / len(texts) * 1e6

    # cores=1: the cache path on any machine (TokenIds hands large batches to the
    # tokenizer's pool on many cores); a new cache per round, so "cold" is cold.
    rows = {
        "tokenizer (encode_batch_fast)": timed(lambda: tokenizer_ids),
        "word cache, cold": timed(lambda: TokenIds(tokenizer, cores=1)),
        "word cache, warm": timed(lambda: TokenIds(tokenizer, cores=1), lambda run: run(texts)),
        "word cache, after the train sentences": timed(lambda: TokenIds(tokenizer, cores=1),
                                                       lambda run: run(train)),
    }
    print(f"{len(texts)} {texts_name(Path(args.shared))} sentences, {os.cpu_count() or 1} cores, best of {args.rounds}; the same ids in every row")
    base = rows["tokenizer (encode_batch_fast)"]
    for name, us in rows.items():
        print(f"{name:40} {us:6.1f} µs per text  {base / us:5.2f}x the tokenizer")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
